() => {
  // The token view scrolls (page.css bounds its height): whenever its tokens change, show the newest ones.
  const follow = (view) => {
    let queued = false;
    const toEnd = () => {
      queued = false;
      const field = view.querySelector('.textfield');
      if (field) field.scrollTop = field.scrollHeight;
    };
    new MutationObserver(() => {
      if (!queued) { queued = true; requestAnimationFrame(toEnd); }
    }).observe(view, {childList: true, subtree: true, characterData: true});
    toEnd();
  };
  const wait = () => {
    const view = document.getElementById('tokens');
    if (view) follow(view); else setTimeout(wait, 200);
  };
  wait();
}
