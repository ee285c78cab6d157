// pushgate UI: the little that needs a script. Pages work without it, showing times in UTC.
//   - times: "5 minutes ago" and local date-times from <time data-ts>, refreshed every 30 s
//   - Integrations: the expand arrow fetches a fresh status table; three-dot menus; Delete confirm
//   - Edit configuration panel: modal side panel, Validate Connection, policy statements
"use strict";

const REFRESH_MS = 30_000;
const UNITS = [ // [seconds in unit, name, switch to the next unit at this many units]
  [60, "minute", 45],
  [3600, "hour", 22],
  [86400, "day", 26],
  [2629800, "month", 11],
  [31557600, "year", Infinity],
];

function relative(ms, now) {
  const seconds = Math.max(0, (now - ms) / 1000);
  if (seconds < 45) return "just now";
  if (seconds < 90) return "1 minute ago";
  for (const [size, name, limit] of UNITS) {
    const count = Math.max(1, Math.round(seconds / size));
    if (count < limit) return `${count} ${name}${count === 1 ? "" : "s"} ago`;
  }
  return "";
}

const LOCAL = new Intl.DateTimeFormat("en-US", {
  year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  second: "2-digit", hourCycle: "h23", timeZoneName: "short",
});

function local(ms) {
  const p = Object.fromEntries(LOCAL.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${p.timeZoneName}`;
}

function renderTimes(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll("time[data-ts]")) {
    const ms = Number(el.dataset.ts);
    const absolute = local(ms);
    if (el.dataset.format === "relative") {
      el.textContent = relative(ms, now);
      el.title = absolute;
    } else {
      el.textContent = absolute;
      el.title = relative(ms, now);
    }
  }
}

function csrf() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

// --- Integrations: expand arrow, menus, delete confirmation -----------------------------------

async function toggleConfigurations(button) {
  const region = document.getElementById(button.getAttribute("aria-controls"));
  if (button.getAttribute("aria-expanded") === "true") {
    button.setAttribute("aria-expanded", "false");
    region.hidden = true;
    button.closest(".integration").classList.remove("is-expanded");
    return;
  }
  button.setAttribute("aria-busy", "true");
  try {
    const response = await fetch(button.dataset.fragment, { headers: { Accept: "text/html" } });
    if (response.redirected || !response.ok) throw new Error(String(response.status));
    region.innerHTML = await response.text();
  } catch {
    region.innerHTML = '<p class="alert alert-error">Could not load the configurations. Reload the page.</p>';
  } finally {
    button.removeAttribute("aria-busy");
  }
  renderTimes(region);
  region.hidden = false;
  button.setAttribute("aria-expanded", "true");
  button.closest(".integration").classList.add("is-expanded");
}

function placeMenu(menu, invoker) {
  const box = invoker.getBoundingClientRect();
  const width = menu.offsetWidth;
  const height = menu.offsetHeight;
  const left = Math.max(8, Math.min(box.right - width, window.innerWidth - width - 8));
  const below = box.bottom + 4;
  const top = below + height > window.innerHeight - 8 ? Math.max(8, box.top - height - 4) : below;
  menu.style.left = `${left}px`;
  menu.style.top = `${top}px`;
}

function onMenuToggle(event) {
  const menu = event.target;
  if (!(menu instanceof HTMLElement) || !menu.classList.contains("menu")) return;
  const invoker = document.querySelector(`[popovertarget="${menu.id}"]`);
  const open = event.newState === "open";
  invoker?.setAttribute("aria-expanded", String(open));
  if (open) {
    if (invoker) placeMenu(menu, invoker);
    menu.querySelector('[role="menuitem"]')?.focus();
  }
}

function onMenuKey(event) {
  const menu = event.target.closest?.(".menu");
  if (!menu) return;
  const items = [...menu.querySelectorAll('[role="menuitem"]')];
  const at = items.indexOf(document.activeElement);
  const moves = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 };
  if (!(event.key in moves)) return;
  event.preventDefault();
  items[(moves[event.key] + items.length) % items.length].focus();
}

// --- the Edit configuration panel --------------------------------------------------------------

function openPanel() {
  const panel = document.getElementById("panel");
  if (!panel) return;
  panel.close();
  panel.showModal();
  panel.addEventListener("cancel", (event) => {
    event.preventDefault();
    window.location.assign(panel.dataset.closeUrl);
  });
  const first = panel.querySelector('[aria-invalid="true"]') ?? panel.querySelector("#f-name");
  if (first && !first.matches(":disabled")) first.focus();
}

function showFieldErrors(form, errors) {
  for (const slot of form.querySelectorAll("[data-error-for]")) {
    const name = slot.dataset.errorFor;
    if (!name.startsWith("config.")) continue;
    const message = errors[name] ?? "";
    slot.textContent = message;
    slot.hidden = !message;
    const control = form.elements.namedItem(name);
    if (control instanceof Element) {
      control.toggleAttribute("aria-invalid", Boolean(message));
      control.closest(".field")?.classList.toggle("has-error", Boolean(message));
    }
  }
}

async function validateConnection(button) {
  const form = button.form;
  const result = document.getElementById("validation-result");
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  result.innerHTML = '<p class="result result-pending">Sending the test event…</p>';
  try {
    const response = await fetch(form.dataset.validateUrl, {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRF-Token": csrf() },
      body: new URLSearchParams(new FormData(form)),
    });
    const answer = await response.json();
    showFieldErrors(form, answer.fieldErrors ?? {});
    if (answer.html !== undefined) {
      result.innerHTML = answer.html;
    } else {
      result.innerHTML = '<p class="result result-error"></p>';
      result.firstChild.textContent = `Not sent: ${answer.message ?? response.status}`;
    }
  } catch {
    result.innerHTML = '<p class="result result-error">Not sent: pushgate did not answer. Try again.</p>';
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

function numberStatements(list) {
  const statements = list.querySelectorAll("[data-statement]");
  statements.forEach((item, index) => {
    item.querySelector("[data-statement-number]").textContent = String(index + 1);
  });
  list.parentElement.querySelector("[data-no-statements]").hidden = statements.length > 0;
}

function addStatement(button) {
  const section = button.closest("section");
  const list = section.querySelector("[data-statements]");
  const names = [...list.querySelectorAll("[name]")].map((el) => el.name.match(/^statements\[(\d+)\]/));
  const next = Math.max(-1, ...names.filter(Boolean).map((m) => Number(m[1]))) + 1;
  const html = section.querySelector("#statement-template").innerHTML.replaceAll("__i__", String(next));
  list.insertAdjacentHTML("beforeend", html);
  numberStatements(list);
  list.lastElementChild.querySelector("select")?.focus();
}

function removeStatement(button) {
  const list = button.closest("[data-statements]");
  button.closest("[data-statement]").remove();
  numberStatements(list);
  list.parentElement.querySelector("[data-add-statement]").focus();
}

// --- wiring ------------------------------------------------------------------------------------

const ACTIONS = [
  [".expander", (el, event) => { event.preventDefault(); toggleConfigurations(el); }],
  ["[data-dialog]", (el) => {
    el.closest("[popover]")?.hidePopover();
    document.getElementById(el.dataset.dialog)?.showModal();
  }],
  ["[data-validate]", (el) => validateConnection(el)],
  ["[data-add-statement]", (el) => addStatement(el)],
  ["[data-remove-statement]", (el) => removeStatement(el)],
];

document.addEventListener("click", (event) => {
  for (const [selector, act] of ACTIONS) {
    const el = event.target.closest?.(selector);
    if (el) return act(el, event);
  }
});
document.addEventListener("toggle", onMenuToggle, true);
document.addEventListener("keydown", onMenuKey);
document.addEventListener("focusout", (event) => {
  const menu = event.target.closest?.(".menu");
  if (!menu?.matches(":popover-open") || menu.contains(event.relatedTarget)) return;
  // Focus going to the menu's own button: its click toggles the menu closed by itself.
  if (event.relatedTarget?.getAttribute?.("popovertarget") === menu.id) return;
  menu.hidePopover();
});
document.addEventListener("focusin", (event) => {
  if (event.target.matches?.("input[data-secret]")) event.target.select();
});
document.addEventListener("DOMContentLoaded", () => {
  renderTimes();
  openPanel();
  setInterval(renderTimes, REFRESH_MS);
  document.addEventListener("visibilitychange", () => document.hidden || renderTimes());
});
