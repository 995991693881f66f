// The usage page's charts: per day, model and user, of exactly the rows the list's filters left. The data
// comes from the page's json_script (no inline code: the CSP allows scripts from 'self' only); the colours
// from the admin theme's CSS variables, read again when the theme changes.

const data = JSON.parse(document.getElementById('usage-chart-data').textContent);
const charts = {
  day: { canvas: 'usage-chart-day', series: data.days, horizontal: false, noun: 'day' },
  model: { canvas: 'usage-chart-model', series: data.models, horizontal: true, noun: 'model' },
  user: { canvas: 'usage-chart-user', series: data.users, horizontal: true, noun: 'user' },
};
// Two hues apart in lightness and hue, readable on the light and the dark admin background alike.
const PROMPT = '#3b82c4';
const COMPLETION = '#e8833a';
const MEASURES = {
  tokens: {
    title: 'Tokens',
    datasets: (series) => [
      { label: 'Prompt tokens', data: series.prompt_tokens, backgroundColor: PROMPT },
      { label: 'Completion tokens', data: series.completion_tokens, backgroundColor: COMPLETION },
    ],
    total: (series) => series.total_tokens,
    format: (value) => value.toLocaleString(),
  },
  replies: {
    title: 'Replies',
    datasets: (series) => [{ label: 'Replies', data: series.replies, backgroundColor: PROMPT }],
    total: (series) => series.replies,
    format: (value) => value.toLocaleString(),
  },
  cost: {
    title: 'Cost (USD)',
    datasets: (series) => [{ label: 'Cost (USD)', data: series.cost, backgroundColor: COMPLETION }],
    total: (series) => series.cost,
    format: (value) => `$${value.toFixed(4)}`,
  },
};

const LABEL_CHARS = 20;

// A long model or user name is cut on the axis (the tooltip and the table give it whole).
function shortLabel(value) {
  const label = String(this.getLabelForValue(value));
  return label.length > LABEL_CHARS ? `${label.slice(0, LABEL_CHARS - 1)}…` : label;
}

function themeColour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** A sentence a screen reader reads for the chart: how many bars, the sum, and the largest. */
function summary(chart, measure) {
  const values = measure.total(chart.series);
  const priced = values.filter((value) => value !== null);
  const count = chart.series.labels.length;
  if (!count) return `${measure.title} per ${chart.noun}: no rows.`;
  if (!priced.length) return `${measure.title} per ${chart.noun}: nothing priced.`;
  const sum = priced.reduce((a, b) => a + b, 0);
  const top = values.indexOf(Math.max(...priced));
  return `${measure.title} per ${chart.noun}, ${count} ${chart.noun}${count === 1 ? '' : 's'}: ` +
    `${measure.format(sum)} in all, the most for ${chart.series.labels[top]} (${measure.format(values[top])}).`;
}

function options(chart, measure) {
  const text = themeColour('--body-quiet-color');
  const grid = themeColour('--hairline-color');
  const valueAxis = chart.horizontal ? 'x' : 'y';
  const scale = (isValue) => ({
    stacked: true,
    beginAtZero: isValue,
    ticks: isValue
      ? { color: text, precision: measure === MEASURES.cost ? undefined : 0 }
      : { color: text, callback: shortLabel },
    grid: { color: grid },
  });
  return {
    indexAxis: chart.horizontal ? 'y' : 'x',
    datasets: { bar: { maxBarThickness: 48 } },
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    scales: {
      x: scale(valueAxis === 'x'),
      y: scale(valueAxis === 'y'),
    },
    plugins: {
      legend: { display: measure === MEASURES.tokens, labels: { color: text } },
      tooltip: {
        callbacks: {
          label: (item) => `${item.dataset.label}: ${item.raw === null ? 'not priced' : measure.format(item.raw)}`,
        },
      },
    },
  };
}

function draw(measureName) {
  const measure = MEASURES[measureName];
  for (const chart of Object.values(charts)) {
    const canvas = document.getElementById(chart.canvas);
    const config = { labels: chart.series.labels, datasets: measure.datasets(chart.series) };
    const existing = Chart.getChart(canvas);
    if (existing) {
      existing.data = config;
      existing.options = options(chart, measure);
      existing.update();
    } else {
      new Chart(canvas, { type: 'bar', data: config, options: options(chart, measure) });
    }
    canvas.setAttribute('aria-label', summary(chart, measure));
  }
  const unpriced = measure === MEASURES.cost && data.days.cost.every((value) => value === null);
  document.getElementById('usage-chart-note').hidden = !unpriced;
}

const measureInputs = document.querySelectorAll('input[name="usage-measure"]');
const chosen = () => [...measureInputs].find((input) => input.checked).value;
measureInputs.forEach((input) => input.addEventListener('change', () => draw(chosen())));
// The admin's theme toggle sets data-theme on <html>; "auto" follows the system's colour scheme.
new MutationObserver(() => draw(chosen())).observe(document.documentElement, {
  attributes: true,
  attributeFilter: ['data-theme'],
});
window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => draw(chosen()));
draw(chosen());
