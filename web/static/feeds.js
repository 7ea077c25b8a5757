// The feed pages' two behaviours: filtering the directory, and copying a feed's URL.
// Everything works without it: the lists are complete and the URLs are selectable text.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const filter = document.querySelector("[data-feed-filter]");
  if (filter) {
    const none = document.getElementById("no-match");
    filter.addEventListener("input", () => {
      const words = filter.value.toLocaleLowerCase().split(/\s+/).filter(Boolean);
      let shown = 0;
      for (const group of document.querySelectorAll("[data-group]")) {
        let inGroup = 0;
        for (const feed of group.querySelectorAll("[data-feed]")) {
          const text = feed.textContent.toLocaleLowerCase();
          const match = words.every((w) => text.includes(w));
          feed.hidden = !match;
          inGroup += match ? 1 : 0;
        }
        group.hidden = inGroup === 0;
        shown += inGroup;
      }
      if (none) none.hidden = shown !== 0;
    });
  }
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      field.select();
      try {
        await navigator.clipboard.writeText(field.value);
      } catch {
        document.execCommand("copy");  // older browsers, or a page not served over https
      }
      const label = button.textContent;
      button.textContent = button.dataset.copied;
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  }
  // A lead image that cannot be loaded leaves its caption, not a broken picture.
  const hide = (img) => { img.hidden = true; };
  for (const img of document.querySelectorAll("figure img")) {
    if (img.complete && img.naturalWidth === 0) hide(img);
    else img.addEventListener("error", () => hide(img));
  }
});
