/* The BPMN modeler of a draft definition (bpmn-js, vendored). The diagram says the flow; each
   element's Flowdesk fields (handler, retry, form, role, ...) are its flowdesk:properties JSON,
   edited in the text area beside the canvas. Saving posts the file, which the server checks as
   any import; refused, the page comes back with the file as sent and the elements marked. */
(function () {
  "use strict";
  // flowdesk:properties as bpmn-js's model knows it: one element whose body is the JSON text.
  var FLOWDESK = {
    name: "Flowdesk",
    uri: "urn:flowdesk:bpmn:1",
    prefix: "flowdesk",
    xml: { tagAlias: "lowerCase" },
    types: [{
      name: "Properties",
      superClass: ["Element"],
      properties: [{ name: "text", isBody: true, type: "String" }]
    }]
  };

  function json(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function pretty(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("fd-modeler-form");
    var area = document.getElementById("fd-props");
    var title = document.getElementById("fd-props-title");
    var problem = document.getElementById("fd-props-error");
    var modeler = new window.BpmnJS({
      container: "#fd-modeler-canvas",
      moddleExtensions: { flowdesk: FLOWDESK }
    });
    window.fdModeler = modeler;
    var registry = modeler.get("elementRegistry");
    var current = null;
    var dirty = false;

    function target(element) {
      if (!element || element.type === "bpmn:Participant" || element.type === "bpmn:Process") {
        var definitions = modeler.getDefinitions();
        var process = ((definitions && definitions.rootElements) || []).filter(function (e) {
          return e.$type === "bpmn:Process";
        })[0];
        var pool = registry.filter(function (e) { return e.type === "bpmn:Participant"; })[0];
        return {
          element: pool || modeler.get("canvas").getRootElement(),
          bo: process,
          label: "Process"
        };
      }
      var bo = element.businessObject;
      return { element: element, bo: bo, label: (bo.name || element.id) };
    }

    function propertiesOf(bo) {
      var values = (bo.extensionElements && bo.extensionElements.values) || [];
      return values.filter(function (v) { return v.$type === "flowdesk:Properties"; })[0] || null;
    }

    function show(element) {
      current = target(element);
      problem.hidden = true;
      dirty = false;
      if (!current.bo) { area.value = ""; return; }
      title.textContent = current.label + " (" + current.bo.$type.replace("bpmn:", "") + ")";
      var properties = propertiesOf(current.bo);
      area.value = properties && properties.text ? pretty(properties.text) : "";
    }

    function apply() {
      var text = area.value.trim();
      if (text) {
        try {
          var value = JSON.parse(text);
          if (value === null || typeof value !== "object" || Array.isArray(value)) {
            throw new Error("it must be a JSON object {...}");
          }
          text = JSON.stringify(value);
        } catch (error) {
          problem.textContent = "Not applied: " + error.message;
          problem.hidden = false;
          return false;
        }
      }
      var moddle = modeler.get("moddle");
      var modeling = modeler.get("modeling");
      var bo = current.bo;
      var ext = bo.extensionElements;
      if (!ext) {
        ext = moddle.create("bpmn:ExtensionElements", { values: [] });
        modeling.updateModdleProperties(current.element, bo, { extensionElements: ext });
      }
      var properties = propertiesOf(bo);
      var others = (ext.values || []).filter(function (v) { return v !== properties; });
      if (!text) {
        if (properties) { modeling.updateModdleProperties(current.element, ext, { values: others }); }
      } else if (!properties) {
        properties = moddle.create("flowdesk:Properties", { text: text });
        modeling.updateModdleProperties(current.element, ext, { values: others.concat([properties]) });
      } else {
        modeling.updateModdleProperties(current.element, properties, { text: text });
      }
      problem.hidden = true;
      dirty = false;
      return true;
    }

    area.addEventListener("input", function () { dirty = true; });
    area.addEventListener("change", function () { if (dirty) { apply(); } });
    document.getElementById("fd-props-apply").addEventListener("click", apply);
    modeler.on("selection.changed", function (event) { show(event.newSelection[0] || null); });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (dirty && !apply()) { return; }
      modeler.saveXML({ format: true }).then(function (result) {
        document.getElementById("fd-bpmn-source").value = result.xml;
        form.submit();
      });
    });

    modeler.importXML(json("fd-bpmn-xml")).then(function () {
      var canvas = modeler.get("canvas");
      canvas.zoom("fit-viewport", "auto");
      (json("fd-bpmn-errors") || []).forEach(function (id) {
        if (registry.get(id)) { canvas.addMarker(id, "fd-bpmn-error"); }
      });
      document.querySelectorAll("#fd-spec-errors li[data-element]").forEach(function (item) {
        item.addEventListener("click", function () {
          var element = registry.get(item.getAttribute("data-element"));
          if (element) { modeler.get("selection").select(element); }
        });
      });
      show(null);
      form.setAttribute("data-ready", "true");
    }).catch(function (error) {
      problem.textContent = "The modeler could not open this file: " + error.message;
      problem.hidden = false;
    });
  });
})();
