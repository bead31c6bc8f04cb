/* Small form behaviours without inline handlers (the Content-Security-Policy allows no inline script):
   a <select data-autosubmit> submits its form when changed. */
document.addEventListener("change", function (ev) {
  var el = ev.target;
  if (el && el.matches && el.matches("select[data-autosubmit]") && el.form) {
    el.form.submit();
  }
});
