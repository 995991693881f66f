// Attachments in the composer: chosen with the button, dropped on the page or pasted, each uploaded at
// once (POST /api/attachments/, with a progress bar) and shown as a chip (name, size, a thumbnail for an
// image, ×). A refusal stays on its chip, in the server's words. The message frame names the chips
// that finished uploading; Send waits while one is still on its way.

import { sizeText } from "../messages.js";
import { csrfToken } from "./csrf.js";

const composer = document.getElementById("composer");
const chipList = document.getElementById("attachment-chips");
const picker = document.getElementById("attach-input");
const attachButton = document.getElementById("attach");
const modelSelect = document.getElementById("model");
const chips = []; // {file, element, id, error, request}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Whether the picked model reads images (its option says so when the catalog does). */
function imagesReadable() {
  const option = modelSelect.selectedOptions[0];
  return !option || option.dataset.vision !== "false";
}

function chipRefresh(chip) {
  const unreadable = chip.kind === "image" && !imagesReadable();
  chip.element.classList.toggle("unreadable", unreadable);
  chip.element.title = unreadable ? "The chosen model cannot read images" : "";
}

function chipRemove(chip) {
  if (chip.request) chip.request.abort();
  chips.splice(chips.indexOf(chip), 1);
  chip.element.remove();
  chipList.hidden = chips.length === 0;
}

function chipAdd(file) {
  const element = el("li", "attachment-chip uploading");
  const thumb = el("span", "attachment-thumb");
  const name = el("span", "attachment-name", file.name || "pasted image");
  const size = el("span", "attachment-size", sizeText(file.size));
  const progress = el("progress", "attachment-progress");
  progress.max = 100;
  progress.value = 0;
  const error = el("span", "attachment-error");
  error.setAttribute("role", "alert");
  const remove = el("button", "attachment-remove", "×");
  remove.type = "button";
  remove.setAttribute("aria-label", `Remove ${file.name || "attachment"}`);
  element.append(thumb, name, size, progress, error, remove);
  chipList.append(element);
  chipList.hidden = false;
  const chip = { file, element, id: null, kind: null, request: null };
  chips.push(chip);
  remove.addEventListener("click", () => chipRemove(chip));
  const most = Number(document.getElementById("attach-input").dataset.maxBytes);
  if (most && file.size > most) {
    // Known before sending it all: said at once, in the file's own terms.
    chip.element.classList.remove("uploading");
    chip.element.classList.add("refused");
    error.textContent = `${file.name || "This file"} is ${sizeText(file.size)}; the limit is ${sizeText(most)}.`;
    return;
  }
  upload(chip, progress, error, thumb);
}

function upload(chip, progress, error, thumb) {
  const body = new FormData();
  body.append("file", chip.file, chip.file.name || "pasted.png");
  const size = chip.element.querySelector(".attachment-size");
  const request = new XMLHttpRequest(); // fetch reports no upload progress
  chip.request = request;
  request.open("POST", "/api/attachments/");
  request.setRequestHeader("X-CSRFToken", csrfToken());
  request.responseType = "json";
  request.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
  });
  request.addEventListener("load", () => {
    chip.request = null;
    chip.element.classList.remove("uploading");
    const answer = request.response || {};
    if (request.status !== 201) {
      chip.element.classList.add("refused");
      error.textContent = answer.message || `The upload failed (${request.status}).`;
      return;
    }
    chip.id = answer.id;
    chip.kind = answer.content_type.startsWith("image/") ? "image" : "file";
    if (chip.kind === "image") {
      const img = el("img");
      img.src = answer.url;
      img.alt = "";
      thumb.append(img);
    }
    chip.element.dataset.attachmentId = answer.id;
    // A scan's text is read after the upload: a turn sent meanwhile gets the file without it.
    size.textContent = sizeText(answer.size) + (answer.reading_text ? " · reading text…" : "");
    chipRefresh(chip);
  });
  request.addEventListener("error", () => {
    chip.request = null;
    chip.element.classList.remove("uploading");
    chip.element.classList.add("refused");
    error.textContent = "The upload failed: check the connection and try again.";
  });
  request.send(body);
}

function filesAdd(files) {
  for (const file of files) chipAdd(file);
}

/** The ids of the uploads to send with the message ([] when none). */
export function attachmentsChosen() {
  return chips.filter((chip) => chip.id).map((chip) => chip.id);
}

/** Whether an upload is still on its way (the message waits for it). */
export function attachmentsUploading() {
  return chips.some((chip) => chip.request !== null);
}

/** The message that named them was stored: the composer starts empty again. */
export function attachmentsClear() {
  for (const chip of [...chips]) if (chip.id || chip.element.classList.contains("refused")) chipRemove(chip);
}

attachButton.addEventListener("click", () => picker.click());
picker.addEventListener("change", () => {
  filesAdd(picker.files);
  picker.value = "";
});
composer.addEventListener("dragover", (event) => {
  if (!event.dataTransfer || !Array.from(event.dataTransfer.types).includes("Files")) return;
  event.preventDefault();
  composer.classList.add("dropping");
});
composer.addEventListener("dragleave", () => composer.classList.remove("dropping"));
composer.addEventListener("drop", (event) => {
  if (!event.dataTransfer || !event.dataTransfer.files.length) return;
  event.preventDefault();
  composer.classList.remove("dropping");
  filesAdd(event.dataTransfer.files);
});
document.getElementById("input").addEventListener("paste", (event) => {
  const files = Array.from(event.clipboardData ? event.clipboardData.files : []);
  if (!files.length) return; // text pastes as text
  event.preventDefault();
  filesAdd(files);
});
modelSelect.addEventListener("input", () => chips.forEach(chipRefresh));
