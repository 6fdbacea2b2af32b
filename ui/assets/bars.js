// The next-token bars: the figure the component's value carries, drawn with Plotly.react in the frame it arrives
// (a watch callback runs in the microtask after the value changes, before the page is painted). The buttons picked
// in the figure's menus (the stage, the scale) are remembered by menu and applied to every later figure that has
// them, so they stay picked while stepping; a figure without the stage picked shows its own first view.
const plot = element.querySelector('.nt-plot');
const picked = {};  // menu name -> the name of the button picked in it
let drawn = null;  // the figure last drawn, as JSON: the Step event's answer to a quick step is the same figure
const setPath = (target, path, value) => {
  const keys = path.split('.');
  const last = keys.pop();
  for (const key of keys) target = target[key] ??= {};
  if (value === null) delete target[last]; else target[last] = value;
};
const press = (figure, button) => {
  // what Plotly does on a click of the button, done to the figure before it is drawn
  const [update] = button.args;
  for (const [key, value] of Object.entries(update)) {
    if (button.method === 'relayout') setPath(figure.layout, key, value);
    else figure.data.forEach((trace, i) => setPath(trace, key, Array.isArray(value) ? value[i] : value));
  }
};
const draw = () => {
  const value = props.value;
  if (!value || !value.figure || !window.Plotly) return;
  if (value.step) plot.dataset.step = JSON.stringify(value.step); else delete plot.dataset.step;
  plot.dataset.provisional = value.provisional ? '1' : '';
  const json = JSON.stringify(value.figure);
  if (json === drawn) return;
  drawn = json;
  const figure = JSON.parse(json);  // the value is the component's own: drawn from a copy
  for (const menu of figure.layout.updatemenus ?? []) {
    const index = menu.buttons.findIndex(button => button.name === picked[menu.name]);
    if (index < 0 || index === menu.active) continue;
    menu.active = index;
    press(figure, menu.buttons[index]);
  }
  Plotly.react(plot, figure);
  if (!plot.ntListening) {
    plot.ntListening = true;
    plot.on('plotly_buttonclicked', event => { picked[event.menu.name] = event.button.name; });
  }
};
// The keyboard: Tab reaches the chart, and the left and right arrow keys move through the stage menu.
plot.tabIndex = 0;
plot.setAttribute('aria-label', 'Next-token bars: the left and right arrow keys pick the stage shown');
plot.addEventListener('keydown', event => {
  const move = {ArrowLeft: -1, ArrowRight: 1}[event.key];
  const menus = plot.layout?.updatemenus ?? [];
  const index = menus.findIndex(menu => menu.name === 'stage');
  if (!move || index < 0) return;
  event.preventDefault();
  const menu = menus[index];
  const active = Math.min(Math.max((menu.active ?? 0) + move, 0), menu.buttons.length - 1);
  picked.stage = menu.buttons[active].name;
  Plotly.update(plot, menu.buttons[active].args[0], {[`updatemenus[${index}].active`]: active});
});
watch('value', draw);
draw();
