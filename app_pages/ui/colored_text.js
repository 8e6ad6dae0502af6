// Text coloured character by character, kept mounted and updated in place (Streamlit Components v2).
//
// st.html of the same text (rnnviz.plots.text.colored_text_html) made the page parse, sanitise
// (DOMPurify) and lay out ~1,000 new <span>s per update. Here the spans stay: each update sets
// their text, colour and tooltip (new spans only when the text grew, spare ones removed when it
// shrank). User text only ever goes into textContent and the title attribute, never into HTML.
//
// data (rnnviz.plots.text.colored_text_data, plus "sig"): {chars: [shown text per character],
// bg: ["#rrggbb" or ""], light: [steps with white text], marked: [steps underlined in red],
// tips: [hover text] or null, font_size, caption, styles: {text, caption} CSS of the box and its
// caption, sig: a digest of the rest}.

const boxes = new WeakMap(); // parentElement -> {root, caption, body, spans, sig, look}

const COLOUR = /^#[0-9a-f]{6}$/i;

function newBox(parentElement) {
  const root = document.createElement("div");
  root.className = "rnnviz-text";             // lecture mode enlarges it (sidebar.LECTURE_CSS)
  const caption = document.createElement("div");
  const body = document.createElement("div");
  root.append(caption, body);
  parentElement.appendChild(root);
  return { root, caption, body, spans: [], sig: null, look: null };
}

function resize(box, n) {
  // Exactly n spans in the body, reusing the ones there.
  const { spans, body } = box;
  if (spans.length < n) {
    const frag = document.createDocumentFragment();
    for (let i = spans.length; i < n; i++) spans.push(frag.appendChild(document.createElement("span")));
    body.appendChild(frag);
  }
  while (spans.length > n) spans.pop().remove();
}

function paint(box, data) {
  const chars = data.chars || [];
  const n = chars.length;
  const light = new Set(data.light || []), marked = new Set(data.marked || []);
  const tips = Array.isArray(data.tips) ? data.tips : null;
  resize(box, n);
  for (let i = 0; i < n; i++) {
    const s = box.spans[i];
    const text = String(chars[i]);
    if (s.textContent !== text) s.textContent = text;
    // Styles are compared with what this span was last given (the browser reads colours back as
    // rgb(), so comparing with s.style would always differ); unchanged ones are not touched.
    const bg = COLOUR.test(data.bg[i] || "") ? data.bg[i] : "";
    const look = bg + (light.has(i) ? " light" : "") + (marked.has(i) ? " marked" : "");
    if (s.__look !== look) {
      s.__look = look;
      s.style.background = bg;
      s.style.color = light.has(i) ? "#fff" : "";
      s.style.textDecoration = marked.has(i) ? "underline wavy red" : "";
    }
    const tip = tips ? String(tips[i] ?? "") : null;
    if (tip === null) s.removeAttribute("title");
    else if (s.title !== tip) s.title = tip;
  }
  // The box's and the caption's styles: rnnviz.plots.text.TEXT_STYLE and CAPTION_STYLE.
  const styles = data.styles || {};
  const look = (styles.text || "") + "\u0000" + (styles.caption || "");
  if (box.look !== look) {
    box.look = look;
    box.root.style.cssText = styles.text || "";
    box.caption.style.cssText = styles.caption || "";
  }
  box.caption.textContent = data.caption || "";
  box.caption.style.display = data.caption ? "" : "none";
  box.root.style.fontSize = (Number(data.font_size) || 15) + "px";
}

export default function (component) {
  const { parentElement, data } = component;
  let box = boxes.get(parentElement);
  if (!box) {
    box = newBox(parentElement);
    boxes.set(parentElement, box);
  }
  // Streamlit calls again with the same data on every rerun: nothing to do then.
  if (data && data.sig !== box.sig) {
    box.sig = data.sig;
    paint(box, data);
  }
  return () => {
    // Unmounted (view switch): take the text out; a remount into the element starts afresh.
    if (boxes.get(parentElement) === box) boxes.delete(parentElement);
    box.root.remove();
  };
}
