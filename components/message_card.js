// A message's box and header in one element: who wrote it, when (in the reader's time zone), and its action
// buttons. A click reaches the server as one page-level event naming the card and the action, so a message
// costs no listener record per button: every send draws two messages, and issue #9 counts their bytes.
const LABELS = { user: "You", assistant: "Assistant" };
const ACTIONS = {
  "branch-prev": ["chevron_left", "Previous version"],
  "branch-next": ["chevron_right", "Next version"],
  edit: ["edit", "Edit and rerun from here"],
  regenerate: ["refresh", "Regenerate"],
  continue: ["playlist_add", "Continue the reply"],
};

export default {
  template: `
    <div :class="['lantern-msg', r === 'user' ? 'lantern-msg-user' : 'lantern-msg-assistant']">
      <div class="lantern-msg-head">
        <q-icon :name="r === 'user' ? 'person' : 'auto_awesome'" />
        <div>{{ label }}</div>
        <div v-if="t" :title="new Date(t * 1000).toISOString()">{{ when }}</div>
        <q-space />
        <template v-if="b">
          <q-btn v-bind="button('branch-prev')" :disable="!a.includes('branch-prev')" />
          <div>{{ b[0] + 1 }}/{{ b[1] }}</div>
          <q-btn v-bind="button('branch-next')" :disable="!a.includes('branch-next')" />
        </template>
        <q-btn v-for="name in a.filter((n) => !n.startsWith('branch-'))" :key="name" v-bind="button(name)" />
      </div>
      <slot></slot>
    </div>`,
  props: {
    r: String, // role
    t: Number, // created, in seconds since the epoch
    a: { type: Array, default: () => [] }, // actions offered now
    b: Array, // [index, count] among sibling versions, when there are several
  },
  computed: {
    label() {
      return LABELS[this.r] || this.r.charAt(0).toUpperCase() + this.r.slice(1);
    },
    when() {
      const d = new Date(this.t * 1000);
      const p = (n) => String(n).padStart(2, "0");
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
    },
  },
  methods: {
    button(name) {
      const [icon, label] = ACTIONS[name];
      return {
        icon, title: label, "aria-label": label, color: "primary", flat: true, round: true, dense: true, size: "sm",
        onClick: () => emitEvent("lantern_msg", [Number(this.$el.id.slice(1)), name]),
      };
    },
  },
};
