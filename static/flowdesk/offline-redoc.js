// Redoc's footer shows a logo it loads from its CDN: offline (or behind a strict proxy) that is a
// failed request on every visit. Drop that one image's address; Redoc then shows no logo.
(function () {
  function fromCdn(value) {
    return String(value).indexOf("https://cdn.redoc.ly/") === 0;
  }
  var setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (this.tagName === "IMG" && String(name).toLowerCase() === "src" && fromCdn(value)) return;
    return setAttribute.call(this, name, value);
  };
  var src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    configurable: true,
    enumerable: src.enumerable,
    get: function () { return src.get.call(this); },
    set: function (value) { if (!fromCdn(value)) src.set.call(this, value); },
  });
})();
