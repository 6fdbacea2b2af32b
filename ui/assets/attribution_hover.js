let latest = 0;
function paint(root, styles, titles, targetPos) {
  root.querySelectorAll('.attr-tokens span').forEach((span, i) => {
    span.classList.toggle('target', i === targetPos);
    span.style.cssText = i < styles.length ? styles[i] : (i === targetPos ? '' : 'opacity:0.35');
    span.title = i < titles.length ? titles[i] : '';
  });
}
element.addEventListener('mouseover', async (event) => {
  const hit = event.target.closest('[data-ci],[data-cand]');
  const root = element.querySelector('.attr');
  if (!hit || !root) return;
  const legend = root.querySelector('.attr-legend');
  if (!root.dataset.hover) { legend.textContent = root.dataset.slow; return; }
  const call = ++latest;
  legend.textContent = 'computing…';
  const cand = hit.dataset.cand === undefined ? null : Number(hit.dataset.cand);
  // a candidate of an inspected earlier token is explained at that token's position
  const at = hit.dataset.ci !== undefined ? hit.dataset.ci : (cand === null ? '' : root.dataset.at);
  const index = at === '' ? null : Number(at);
  const out = await server.explain(root.dataset.request, index, cand, root.dataset.method);
  if (call !== latest) return;
  if (!out || out.error) { legend.textContent = out ? out.error : 'attribution failed'; return; }
  paint(root, out.styles, out.titles, index === null ? -1 : Number(root.dataset.plen) + index);
  legend.innerHTML = out.legend_html;
});
