// Streams markdown with O(n) traffic: finished blocks arrive once as HTML, the live tail as text deltas.
export default {
  template: `
    <div class="lantern-md" @click="onClick">
      <div v-for="(html, i) in blocks" :key="i" class="lantern-block" v-html="html"></div>
      <div v-if="tail" class="lantern-tail">{{ tail }}</div>
      <span v-if="streaming" class="lantern-caret" aria-label="generating"></span>
    </div>`,
  props: { initialBlocks: Array, initialTail: String, live: Boolean },
  data() {
    return { blocks: [...(this.initialBlocks || [])], tail: this.initialTail || "", streaming: this.live };
  },
  methods: {
    append(delta) {
      this.follow(() => { this.tail += delta; });
    },
    freeze(htmls, tail) {
      this.follow(() => { this.blocks.push(...htmls); this.tail = tail; });
    },
    reset(htmls, tail, live) {
      this.follow(() => { this.blocks = htmls; this.tail = tail; this.streaming = live; });
    },
    done() {
      this.streaming = false;
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
