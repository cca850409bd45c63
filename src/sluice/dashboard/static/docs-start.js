// Starts Redoc on the API docs page (a file, so the page needs no inline script).
"use strict";
(function () {
  const box = document.getElementById("redoc-container");
  if (box && window.Redoc) window.Redoc.init(box.dataset.specUrl, {}, box);
})();
