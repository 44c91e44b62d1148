// The console works without this script; it only helps. It stores nothing
// in the browser.
"use strict";

// A form sent once is not sent again by a second click while the first is
// under way (the idempotency key would make it harmless anyway).
document.addEventListener("submit", function (e) {
  var form = e.target;
  if (form.dataset.sent) {
    e.preventDefault();
    return;
  }
  form.dataset.sent = "1";
  var buttons = form.querySelectorAll("button[type=submit]");
  window.setTimeout(function () {
    buttons.forEach(function (b) { b.disabled = true; });
  }, 0);
});

// A problem summary takes the focus, so that a screen reader reads it and
// the keyboard starts there.
document.addEventListener("DOMContentLoaded", function () {
  var p = document.getElementById("problem");
  if (p) {
    p.focus();
  }
});
