// The admin's agent form, a little livelier: Max tokens follows the output limits of the models picked
// (the server checks the same), the handoff rows show those filled and one blank more, and picking a
// colour unticks "No colour". Without it the form still works: every row shows, the server says the limit.
// An ES module (the admin's form media): it runs once the page is parsed.

function agentFormEnliven(form) {
  const first = form.querySelector('#id_first_model');
  const handoffs = [...form.querySelectorAll('[data-agent-handoffs] select')];
  const maxTokens = form.querySelector('#id_max_tokens');
  const limitNote = form.querySelector('[data-agent-output-limit]');
  const colour = form.querySelector('#id_colour');
  const noColour = form.querySelector('#id_no_colour');

  function limitFollow() {
    if (!maxTokens) return;
    const ceiling = Number(maxTokens.dataset.ceiling);
    const limits = [first, ...handoffs]
      .map((select) => Number(select && select.selectedOptions[0] && select.selectedOptions[0].dataset.outputLimit))
      .filter((limit) => limit > 0);
    const limit = Math.min(ceiling, ...limits);
    maxTokens.max = String(limit);
    if (limitNote) {
      limitNote.textContent = limits.length ? `now ${limit.toLocaleString('en-US')}` : 'none known for these models';
    }
  }

  function rowsShow() {
    let blankShown = false;
    for (const select of handoffs) {
      const row = select.closest('li');
      const blank = !select.value;
      row.hidden = blank && blankShown;
      if (blank) blankShown = true;
    }
  }

  for (const select of [first, ...handoffs]) {
    if (!select) continue;
    select.addEventListener('change', () => {
      limitFollow();
      rowsShow();
    });
  }
  if (colour && noColour) colour.addEventListener('input', () => { noColour.checked = false; });
  limitFollow();
  rowsShow();
}

const agentForm = document.getElementById('agent_form');
if (agentForm) agentFormEnliven(agentForm);
