() => {
  // Clicking a head or an MLP cell of an "Inside the model" map (split or sweep) ablates it on the branch:
  // the cell's "layer:part" goes into the hidden pick, then the hidden event button runs the edit.
  const pick = (point) => {
    if (!point || !/^L\d+$/.test(String(point.y))) return null;  // the embedding row: nothing to ablate
    const x = String(point.x);
    const part = x === 'MLP' ? 'mlp' : (/^H\d+$/.test(x) ? x.slice(1) : null);
    return part === null ? null : `${String(point.y).slice(1)}:${part}`;
  };
  const attach = (plot) => {
    if (plot.ntAblate || typeof plot.on !== 'function') return;
    plot.ntAblate = true;
    plot.on('plotly_click', (data) => {
      const chosen = pick(data && data.points && data.points[0]);
      const box = document.querySelector('#inside-ablate-pick textarea, #inside-ablate-pick input');
      const button = document.querySelector('#inside-ablate-event');
      if (!chosen || !box || !button) return;
      box.value = chosen;
      box.dispatchEvent(new Event('input', {bubbles: true}));
      setTimeout(() => button.click(), 0);  // after Gradio has taken the pick's new value
    });
  };
  const scan = () => document.querySelectorAll('#inside-dla .js-plotly-plot, #inside-sweep .js-plotly-plot')
    .forEach(attach);
  new MutationObserver(scan).observe(document.body, {childList: true, subtree: true});
  scan();
}
