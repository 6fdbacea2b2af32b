const PROVISIONAL = {{PROVISIONAL}};  // marks the quick answer's bars: still there after the Step event, it sent no panels
const PANELS = {{PANELS}};  // the panels a step changes, in the order of the apply and settle events' values
const SETTLE_WITHIN_MS = {{SETTLE_WITHIN_MS}};
const EDIT_GRACE_MS = {{EDIT_GRACE_MS}};
// when a control's value was last committed, and the request the bars carried then: until the bars carry
// another (or a while passed), that control's own event may still be on its way, to land after a quick answer
let edited = {at: -Infinity, step: null};
const carried = () => element.querySelector('[data-step]')?.dataset.step ?? null;
let ready = null;  // the quick answer the next apply draws: panel name -> value, as Gradio sends it
let before = null;  // the panels' values before the quick answer replaced them
let settled = null;  // resolves the wait of the click in progress once its Step event has settled
let queued = 0;  // clicks waiting for the one in progress
let running = false;
const nextFrame = () => new Promise(resolve => requestAnimationFrame(() => resolve()));
window.ntBars = {
  speculated: 0,
  drawMs: [],  // per quick answer: from setting the values to the next frame (bench/ui_latency.py reads it)
  async quickStep() {
    const root = element.querySelector('[data-step]');
    if (!root || (performance.now() - edited.at < EDIT_GRACE_MS && edited.step === root.dataset.step)) return;
    let out = null;
    try { out = await server.quick_step(root.dataset.step); } catch (e) { return; }
    if (out && out.plot) { ready = out; this.speculated += 1; }
  },
  apply(shown) {
    // the Step button's event: the quick answer's panels in one update (undefined: left as they are), then,
    // once that frame is painted, the Step event (its ~40 inputs are read in script: not before the paint)
    const start = performance.now();
    const event = () => document.querySelector('#step-event')?.click();
    nextFrame().then(() => {
      if (before !== null) this.drawMs.push(performance.now() - start);
      setTimeout(event, 0);
    });
    before = ready ? shown : null;
    if (!ready) return [];
    const out = PANELS.map(name => ready[name]);
    ready = null;
    return out;
  },
  settle(shown) {
    // after the Step event: when it sent no panels (refused, nothing appended), put back what it left
    const plot = shown[PANELS.indexOf('plot')];
    const out = before !== null && plot?.[PROVISIONAL] ? before : [];
    before = null;
    if (settled) settled();
    return out;
  },
  async run(button) {
    // one click at a time, in order: each steps from the state the step before it left
    running = true;
    while (queued > 0) {
      queued -= 1;
      button.dataset.queued = queued || '';
      await this.quickStep().catch(() => {});
      const done = new Promise(resolve => { settled = resolve; setTimeout(resolve, SETTLE_WITHIN_MS); });
      const click = new MouseEvent('click', {bubbles: true, cancelable: true});
      click.ntPass = true;
      button.dispatchEvent(click);
      await done;
      settled = null;
      await nextFrame();  // Gradio takes the button's next click once this event's chain is over
    }
    running = false;
  },
  enqueue(button) {
    queued += 1;
    button.dataset.queued = running ? queued : '';
    if (!running) this.run(button);
  },
};
if (!window.ntStepListener) {
  // A click on Step goes through the page's queue: the quick answer first, then the click is given to Gradio.
  window.ntStepListener = (event) => {
    const button = event.target.closest('#step-button');
    if (!button || event.ntPass || !window.ntBars) return;
    event.stopImmediatePropagation();
    window.ntBars.enqueue(button);
  };
  document.addEventListener('click', window.ntStepListener, true);
  document.addEventListener('change', () => { edited = {at: performance.now(), step: carried()}; }, true);
}
