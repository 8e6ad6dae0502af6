// Presenter mode's keys (Streamlit Components v2, no markup): the keys a presentation clicker sends
// go to the next or previous slide. PageDown / PageUp always, except while typing in a text field;
// ArrowRight / ArrowLeft only where the focus is not on a control that arrows move (a slider, a
// select box, radio buttons, tabs, a text field). ArrowUp/ArrowDown keep scrolling the page.
//
// data: {at: the slide shown (0-based), n: the number of slides}. On a key the component sends the
// trigger "go" = {to: the slide wanted, id: unique}; presses before the page shows the new slide add
// up (two quick PageDowns go two slides on). One listener on the window (capture phase, so a focused
// widget does not take PageDown first), whatever the number of mounts.

const TEXT_ENTRY = 'textarea, [contenteditable=""], [contenteditable="true"], ' +
  'input:not([type="checkbox"]):not([type="radio"]):not([type="range"]):not([type="button"])';
// Every input (a slider is an <input type="range">, radio buttons are inputs too) and the ARIA roles of
// the controls that arrows move.
const ARROW_OWNERS = TEXT_ENTRY + ', input, select, [role="slider"], [role="combobox"], [role="listbox"], ' +
  '[role="option"], [role="radio"], [role="radiogroup"], [role="tab"], [role="spinbutton"]';
const STEPS = { PageDown: 1, PageUp: -1, ArrowRight: 1, ArrowLeft: -1 };

let current = null; // {at, n, target, send, owner}
let seq = 0;

function onKey(e) {
  const step = STEPS[e.key];
  if (!current || !step || e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
  const focus = e.target instanceof Element ? e.target : document.activeElement;
  const owners = e.key.startsWith("Page") ? TEXT_ENTRY : ARROW_OWNERS;
  if (focus && focus.closest && focus.closest(owners)) return;
  e.preventDefault();
  e.stopPropagation();
  const from = current.target === null ? current.at : current.target;
  const to = Math.max(0, Math.min(current.n - 1, from + step));
  if (to === from) return;
  current.target = to;
  seq += 1;
  current.send("go", { to, id: `${Date.now()}-${seq}` });
}

export default function (component) {
  const { data, setTriggerValue } = component;
  const owner = {};
  if (!current || current.at !== data.at || current.n !== data.n) {
    current = { at: data.at, n: data.n, target: null };
  }
  current.send = setTriggerValue;
  current.owner = owner;
  window.removeEventListener("keydown", onKey, true);
  window.addEventListener("keydown", onKey, true);
  return () => {
    // An older mount's cleanup (after a newer one took over) must not stop the keys.
    if (current && current.owner === owner) {
      window.removeEventListener("keydown", onKey, true);
      current = null;
    }
  };
}
