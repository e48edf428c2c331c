// Streams markdown with O(n) traffic: the text arrives once, as deltas, and the browser renders each
// block when the server says it is finished, with the server's Pygments token runs for code blocks.
import "markdown-it"; // markdown-it 14.1.0 (vendor/), the original of the server's markdown-it-py port

const md = globalThis.markdownit("commonmark", { html: false, linkify: false, typographer: false, highlight });
md.enable(["table", "strikethrough"]);
let fenceHints = []; // hints of the block being rendered, consumed in document order by `highlight`

// One frame from the server (relayed by streaming_markdown.py's RELAY_JS): new text, then finished blocks as
// [length, hints if it has code fences, ...], then 1 at the end.
globalThis._sm = (id, delta, blocks, end) => getElement(id)?.frame(delta, blocks || [], end);

export default {
  template: `
    <div class="lantern-md" @click="onClick">
      <div ref="done" class="lantern-done"></div>
      <div v-if="shownTail" class="lantern-tail">{{ shownTail }}</div>
      <span v-if="streaming" class="lantern-caret" aria-label="generating"></span>
    </div>`,
  props: { state: { type: Object, default: () => ({ t: "", b: [], l: true, v: 0 }) } },
  data() {
    // Finished blocks are not reactive data: they go into the DOM once (see `freeze`), so an update costs
    // the new text, not a re-render of every block so far (which made a long reply O(n²) in the browser).
    return { tail: "", shown: 0, streaming: false, version: -1, revealing: false };
  },
  computed: {
    shownTail() {
      // Frames come a few times a second (bytes matter more than frame rate); the text of each is
      // revealed smoothly over ~200 ms in the browser, which costs nothing on the wire.
      return this.tail.slice(0, this.shown).replace(/^\n+/, ""); // blank lines before a block are not shown
    },
  },
  created() {
    this.unmounted = []; // blocks' HTML rendered before the element is in the page
    this.reset(this.state);
  },
  mounted() {
    this.$refs.done.insertAdjacentHTML("beforeend", this.unmounted.join(""));
    this.unmounted = [];
  },
  watch: {
    state(value) {
      this.reset(value);
    },
  },
  methods: {
    reset(state) {
      // Whole-element updates re-send the same state: only a new version replaces the text.
      if (!state || state.v === this.version) return;
      this.version = state.v;
      this.follow(() => {
        this.unmounted = [];
        if (this.$refs.done) this.$refs.done.replaceChildren();
        this.tail = state.t;
        this.freeze(state.b);
        if (!state.l) this.tail = "";
        this.shown = this.tail.length; // loaded text shows at once
        this.streaming = state.l;
      });
    },
    frame(delta, blocks, end) {
      this.follow(() => {
        this.tail += delta;
        this.freeze(blocks);
        if (end) {
          this.tail = "";
          this.shown = 0;
          this.streaming = false;
        } else {
          this.reveal();
        }
      });
    },
    reveal() {
      if (this.revealing) return;
      this.revealing = true;
      let last = performance.now();
      const step = (now) => {
        const backlog = this.tail.length - this.shown;
        if (backlog <= 0 || !this.streaming) {
          this.revealing = false;
          return;
        }
        this.follow(() => {
          this.shown += Math.max(1, Math.ceil(backlog * Math.min(1, (now - last) / 200)));
        });
        last = now;
        requestAnimationFrame(step);
      };
      requestAnimationFrame(step);
    },
    freeze(blocks) {
      // [length, (hints if the block has code fences), length, ...]; the tail is cut once, after the loop.
      let start = 0;
      for (let i = 0; i < blocks.length; i++) {
        const source = this.tail.slice(start, start + blocks[i]);
        start += blocks[i];
        fenceHints = Array.isArray(blocks[i + 1]) ? blocks[++i] : [];
        const html = `<div class="lantern-block">${md.render(source)}</div>`;
        if (this.$refs.done) this.$refs.done.insertAdjacentHTML("beforeend", html);
        else this.unmounted.push(html);
      }
      this.tail = this.tail.slice(start);
      this.shown = Math.max(0, this.shown - start); // a finished block shows whole, at once
    },
    follow(change) {
      // Keep the newest text in view only if the reader has not scrolled up.
      const nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 120;
      change();
      if (nearBottom) this.$nextTick(() => window.scrollTo(0, document.body.scrollHeight));
    },
    onClick(event) {
      const button = event.target.closest(".lantern-copy");
      if (!button) return;
      const code = button.parentElement.querySelector("code");
      navigator.clipboard?.writeText(code ? code.innerText : "");
      button.textContent = "copied";
      setTimeout(() => { button.textContent = "copy"; }, 1500);
    },
  },
};

// The same HTML as components/render.py's `_highlight`.
function highlight(code, lang) {
  const hint = fenceHints.shift();
  let body;
  if (Array.isArray(hint)) body = hint[0]; // Pygments' own HTML, made on the server
  else if (typeof hint === "string") body = pygmentsBody(code.replace(/^\n+|\n+$/g, "") + "\n", hint);
  if (body === undefined) body = escapeHtml(code);
  const label = lang ? escapeHtml(lang) : "text";
  return `<pre class="hl" data-lang="${label}"><button class="lantern-copy" type="button" title="Copy code">copy</button><code>${body}</code></pre>`;
}

// Pygments' HtmlFormatter(nowrap=True)._format_lines, fed "<length><class>" runs over `text` (no length: 1).
function pygmentsBody(text, hint) {
  let out = "", line = "", open = false, lspan = "", pos = 0;
  for (const run of hint.split(" ")) {
    const m = /^(\d*)([\w.-]*)$/.exec(run);
    if (!m) return undefined;
    const value = text.slice(pos, (pos += m[1] ? Number(m[1]) : 1)); // a length of 1 is left out
    const cspan = m[2] ? `<span class="${m[2].replace(/\./g, " ")}">` : "";
    const close = cspan && "</span>";
    const parts = value.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").split("\n");
    for (const part of parts.slice(0, -1)) {
      if (open) {
        if (lspan !== cspan && part) line += (lspan && "</span>") + cspan + part + close + "\n";
        else line += part + (lspan && "</span>") + "\n";
        out += line;
        line = "";
        open = false;
      } else out += part ? cspan + part + close + "\n" : "\n";
    }
    const last = parts[parts.length - 1];
    if (open && last) {
      if (lspan !== cspan) {
        line += (lspan && "</span>") + cspan + last;
        lspan = cspan;
      } else line += last;
    } else if (last) {
      line = cspan + last;
      lspan = cspan;
      open = true;
    }
  }
  if (pos !== text.length) return undefined; // runs that do not fit the text: show it plain
  return open ? out + line + (lspan && "</span>") + "\n" : out;
}

// Python's html.escape(quote=True).
function escapeHtml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#x27;");
}
