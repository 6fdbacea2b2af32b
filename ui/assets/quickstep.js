const MARK = {{MARK}};
let before = null;  // the bars' HTML before provisional ones replaced it
const picked = () => element.querySelector('.nt-pick:checked')?.value;
function draw(html, stage) {
  element.innerHTML = html;  // Gradio later morphs this DOM, node by node, into the value it is sent
  const pick = stage && element.querySelector(`.nt-pick[value="${stage}"]:enabled`);
  if (pick) pick.checked = true;  // the stage picked in the menu stays picked
}
window.ntBars = {
  speculated: 0,
  pending: null,
  async quickStep() {
    const root = element.querySelector('.nt-bars[data-step]');
    if (!root || before !== null) return;
    let out = null;
    try { out = await server.quick_step(root.dataset.step); } catch (e) { return; }
    if (!out || !out.html) return;
    before = element.innerHTML;
    draw(out.html, picked());
    this.speculated += 1;
  },
  settle() {
    // the Step event redraws the bars when it appended a token; when it did not, put back what it left
    if (before !== null && element.innerHTML.includes(MARK)) draw(before, picked());
    before = null;
  },
};
if (!window.ntStepListener) {
  // A click on Step runs the quick path first and gives the click to Gradio once the new bars are on screen:
  // Gradio's own handling (reading every input, ~35 ms of script) would hold the page's thread meanwhile.
  window.ntStepListener = (event) => {
    const button = event.target.closest('#step-button');
    if (!button || event.ntPass || !window.ntBars) return;
    event.stopImmediatePropagation();
    if (window.ntBars.pending) return;  // one step at a time, as Gradio does with a pending event
    const pass = () => {
      window.ntBars.pending = null;
      const click = new MouseEvent('click', {bubbles: true, cancelable: true});
      click.ntPass = true;
      button.dispatchEvent(click);
    };
    // two frames: the new bars are painted and on screen before Gradio's work holds the thread
    const afterFrames = () => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(pass, 0)));
    window.ntBars.pending = window.ntBars.quickStep().catch(() => {}).then(afterFrames);
  };
  document.addEventListener('click', window.ntStepListener, true);
}
