// After a refused submit the page comes back with the errors: bring the first one into view and
// put the cursor in its field, so the person sees at once why nothing happened. (On "load":
// the browser's own jump to the #fragment of the form's action comes before it.)
window.addEventListener("load", function () {
  var error = document.querySelector(".errorsummary, .errorlist[role=alert]");
  if (!error) return;
  var field = document.querySelector(
    ".field.has-error input:not([type=hidden]), .field.has-error select, .field.has-error textarea"
  );
  (field || error).scrollIntoView({ block: "center" });
  if (field) field.focus({ preventScroll: true });
});
