/* The BPMN viewer on a definition's or an instance's admin page (bpmn-js, vendored). Tasks are
   marked by state (an instance) or carry the number of cases waiting there (a definition).
   Without JavaScript, or when bpmn-js can't draw the file, Flowdesk's SVG drawing stays. */
(function () {
  "use strict";
  var WORDS = {
    completed: "completed",
    active: "waiting or running",
    failed: "failed",
    skipped: "skipped",
    cancelled: "cancelled"
  };

  function json(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function badge(kind, count) {
    var span = document.createElement("span");
    span.className = kind;
    span.textContent = count + " " + kind;
    span.title = count + (kind === "failed" ? " case(s) failed here" : " case(s) waiting here");
    return span;
  }

  function legend(box, marks) {
    var used = {};
    Object.keys(marks).forEach(function (id) { used[marks[id]] = true; });
    var line = document.createElement("div");
    line.className = "fd-bpmn-legend";
    Object.keys(WORDS).forEach(function (mark) {
      if (!used[mark]) { return; }
      var item = document.createElement("span");
      item.className = mark;
      item.textContent = WORDS[mark];
      line.appendChild(item);
    });
    box.insertBefore(line, box.children[1]);
  }

  function start(box) {
    var data = json("fd-bpmn-data") || {};
    var container = document.createElement("div");
    container.className = "fd-bpmn-canvas";
    container.id = "fd-bpmn-canvas";
    box.insertBefore(container, box.firstChild);
    var viewer = new window.BpmnJS({ container: container });
    viewer.importXML(json("fd-bpmn-xml")).then(function (result) {
      var canvas = viewer.get("canvas");
      var overlays = viewer.get("overlays");
      var registry = viewer.get("elementRegistry");
      canvas.zoom("fit-viewport", "auto");
      var marks = data.marks || {};
      Object.keys(marks).forEach(function (id) {
        if (registry.get(id)) { canvas.addMarker(id, "fd-bpmn-" + marks[id]); }
      });
      var counts = data.counts || {};
      Object.keys(counts).forEach(function (id) {
        if (!registry.get(id)) { return; }
        var html = document.createElement("div");
        html.className = "fd-bpmn-count";
        html.setAttribute("data-element", id);
        if (counts[id].waiting) { html.appendChild(badge("waiting", counts[id].waiting)); }
        if (counts[id].failed) { html.appendChild(badge("failed", counts[id].failed)); }
        overlays.add(id, "fd-count", { position: { top: -10, right: 30 }, html: html });
      });
      if (data.marks) { legend(box, marks); }
      box.setAttribute("data-warnings", String(result.warnings.length));
      box.classList.add("fd-bpmn-ready");
    }).catch(function (error) {
      container.remove();
      var note = document.createElement("p");
      note.className = "fd-bpmn-note";
      note.textContent = "The BPMN viewer could not draw this definition (" + error.message +
        "); Flowdesk's drawing is below.";
      box.insertBefore(note, box.firstChild);
      box.classList.add("fd-bpmn-failed");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-fd-bpmn=viewer]").forEach(start);
  });
})();
