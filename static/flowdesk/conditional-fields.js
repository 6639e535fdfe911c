/* Conditional form fields (show_if / required_if), as progressive enhancement: without this
   script every field shows and the server checks the rules (processes/spec/data.py). A field
   whose widget carries data-show-if-field/-equals is hidden while the named field (or the
   decision) has another value; data-required-if-* adds a "*" while the rule holds. */
(function () {
  "use strict";
  function valueOf(form, name) {
    var inputs = form.querySelectorAll('[name="' + name + '"]');
    for (var i = 0; i < inputs.length; i++) {
      var input = inputs[i];
      if (input.type === "radio") { if (input.checked) return input.value; continue; }
      if (input.type === "checkbox") return input.checked ? "true" : "false";
      return input.value;
    }
    return "";
  }
  function holds(form, el, kind) {
    var field = el.getAttribute("data-" + kind + "-field");
    if (!field) return null;
    return valueOf(form, field) === el.getAttribute("data-" + kind + "-equals");
  }
  function apply(form) {
    var ruled = form.querySelectorAll("[data-show-if-field], [data-required-if-field]");
    for (var i = 0; i < ruled.length; i++) {
      var el = ruled[i];
      var box = el.closest(".field") || el;
      var shown = holds(form, el, "show-if");
      box.hidden = shown === false;
      var required = holds(form, el, "required-if");
      if (required !== null) box.classList.toggle("required-now", required);
    }
  }
  function init() {
    var forms = document.querySelectorAll("form#decision-form");
    for (var i = 0; i < forms.length; i++) {
      (function (form) {
        form.addEventListener("change", function () { apply(form); });
        form.addEventListener("input", function () { apply(form); });
        apply(form);
      })(forms[i]);
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
