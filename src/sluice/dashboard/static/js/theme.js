// Applies the chosen theme before the page paints (a classic script in <head>, from a file).
(function () {
  try {
    const t = localStorage.getItem("sluice.theme");
    if (t === "light" || t === "dark") document.documentElement.dataset.theme = t;
  } catch (e) { /* storage disabled: follow the system */ }
})();
