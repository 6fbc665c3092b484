/* Workflow Service dashboard: the API key (sessionStorage), htmx requests, the live
 * console (server-sent events read with fetch: EventSource cannot send the key),
 * downloads, the upload form and the plot. No inline script: the CSP forbids it. */
(function () {
  "use strict";

  var STORAGE_KEY = "workflowService.apiKey";
  var HEADER = "Workflow-API-Key";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function apiKey() { return sessionStorage.getItem(STORAGE_KEY); }
  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  /* fetch() with the key. */
  function api(path, options) {
    options = options || {};
    var headers = new Headers(options.headers || {});
    var key = apiKey();
    if (key) headers.set(HEADER, key);
    return fetch(path, Object.assign({}, options, { headers: headers, credentials: "same-origin" }));
  }

  /* The API's error body {"message", "errors"} as one line. */
  async function errorText(response) {
    try {
      var body = await response.json();
      var text = body.message || response.statusText;
      if (body.errors && typeof body.errors === "object") {
        var details = Object.keys(body.errors).map(function (name) {
          return name + ": " + [].concat(body.errors[name]).join(", ");
        });
        if (details.length) text += " (" + details.join("; ") + ")";
      }
      return text;
    } catch (error) {
      return response.status + " " + response.statusText;
    }
  }

  function keyProblem(status) {
    if (status === 401) return "Unknown API key: check it and log in again.";
    if (status === 403) return "This API key lacks the PIPELINES_CLIENT permission.";
    return "The server answered " + status + ".";
  }

  // --- log in / out ---------------------------------------------------------------------

  function showLogin(message) {
    sessionStorage.removeItem(STORAGE_KEY);
    $("#app").hidden = true;
    $("#logout").hidden = true;
    $("#login").hidden = false;
    $("#login-error").textContent = message || "";
    $("#login-key").focus();
  }

  var started = false;

  function showApp() {
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#logout").hidden = false;
    htmx.trigger(document.body, "ui:ready");
    if (started) {
      htmx.trigger(document.body, "ui:refresh");
      return;
    }
    started = true;
    if (document.body.dataset.page === "run") followConsole();
  }

  async function logIn(event) {
    event.preventDefault();
    var key = $("#login-key").value.trim();
    if (!key) return;
    var response;
    try {
      response = await fetch("/v1/pipelines?limit=1", { headers: { "Workflow-API-Key": key } });
    } catch (error) {
      showLogin("The server cannot be reached: " + error.message);
      return;
    }
    if (!response.ok) {
      showLogin(response.status === 401 || response.status === 403
        ? keyProblem(response.status) : await errorText(response));
      return;
    }
    sessionStorage.setItem(STORAGE_KEY, key);
    $("#login-key").value = "";
    showApp();
  }

  // --- htmx: the key on every fragment request, and what a refused key means ------------

  document.addEventListener("htmx:configRequest", function (event) {
    var key = apiKey();
    if (key) event.detail.headers[HEADER] = key;
  });
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    if (status === 401 || status === 403) showLogin(keyProblem(status));
  });

  // --- the upload form ------------------------------------------------------------------

  var selectPipeline = null;  // select this pipeline once the options arrive

  function parseDefines(text) {
    var defines = {};
    text.split(/\r?\n/).forEach(function (line) {
      line = line.trim();
      if (!line) return;
      var at = line.indexOf("=");
      if (at < 1) throw new Error("Defines: \"" + line + "\" is not NAME=value");
      defines[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    });
    return defines;
  }

  function showNewPipelineName() {
    var select = $("#run-pipeline");
    if (select) $("#new-pipeline").hidden = select.value !== "";
  }

  async function startRun(event) {
    event.preventDefault();
    var error = $("#start-error");
    var button = $("#start-run-submit");
    var files = $("#run-files").files;
    error.textContent = "";
    button.disabled = true;
    try {
      if (!files.length) throw new Error("Choose the model (.glm) and its files.");
      var defines = parseDefines($("#run-defines").value);
      var pipeline = $("#run-pipeline").value;
      if (!pipeline) {
        var glm = Array.prototype.find.call(files, function (f) { return /\.glm$/i.test(f.name); });
        var name = $("#new-pipeline-name").value.trim() || (glm ? glm.name.replace(/\.glm$/i, "") : "model");
        var created = await api("/v1/pipelines", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ kind: "gridlabd", name: name.slice(0, 50) }),
        });
        if (!created.ok) throw new Error("Creating the pipeline failed: " + await errorText(created));
        pipeline = (await created.json()).uuid;
        selectPipeline = pipeline;
      }
      var form = new FormData();
      Array.prototype.forEach.call(files, function (file) { form.append("files", file, file.name); });
      if (Object.keys(defines).length) form.append("defines", JSON.stringify(defines));
      var response = await api("/v1/pipelines/" + encodeURIComponent(pipeline) + "/runs", {
        method: "POST", body: form,
      });
      if (!response.ok) throw new Error("Starting the run failed: " + await errorText(response));
      var run = await response.json();
      var holder = document.createElement("div");
      holder.setAttribute("hx-get", "/ui/fragments/pipelines/" + encodeURIComponent(pipeline) +
        "/runs/" + encodeURIComponent(run.uuid));
      holder.setAttribute("hx-trigger", "load");
      holder.setAttribute("hx-swap", "outerHTML");
      holder.textContent = "Run started…";
      $("#started-runs").prepend(holder);
      htmx.process(holder);
      $("#run-files").value = "";
      $("#new-pipeline-name").value = "";
      htmx.trigger(document.body, "ui:refresh");
    } catch (problem) {
      error.textContent = problem.message;
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "run-pipeline") {
      var select = event.detail.target;
      if (selectPipeline && select.querySelector("option[value=\"" + CSS.escape(selectPipeline) + "\"]")) {
        select.value = selectPipeline;
      }
      showNewPipelineName();
    }
    autoPlot();
  });

  // --- downloads: fetch with the key, then save the blob ---------------------------------

  async function download(button) {
    button.disabled = true;
    try {
      var response = await api(button.dataset.url);
      if (!response.ok) throw new Error(await errorText(response));
      var url = URL.createObjectURL(await response.blob());
      var link = document.createElement("a");
      link.href = url;
      link.download = button.dataset.filename || "artifact";
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
    } catch (problem) {
      button.title = "Download failed: " + problem.message;
      button.classList.add("failed");
    } finally {
      button.disabled = false;
    }
  }

  // --- the plot -----------------------------------------------------------------------------

  var plotted = null;  // {artifact, parsed}

  function selectedColumns() {
    return Array.prototype.filter.call(
      document.querySelectorAll("#plot-columns input[type=checkbox]"), function (box) { return box.checked; }
    ).map(function (box) { return Number(box.value); });
  }

  function redraw() {
    if (!plotted) return;
    window.WorkflowPlot.render($("#plot"), plotted.parsed, $("#plot-mode").value, selectedColumns());
  }

  async function plotArtifact(link) {
    var element = $("#plot");
    var error = $("#plot-error");
    $("#plot-card").hidden = false;
    $("#plot-title").textContent = link.dataset.name;
    error.textContent = "";
    element.dataset.state = "loading";
    try {
      var response = link.dataset.local === "true" ? await api(link.dataset.url) : await fetch(link.dataset.url);
      if (!response.ok) throw new Error(await errorText(response));
      var parsed = window.WorkflowPlot.parseRecorderCsv(await response.text());
      plotted = { artifact: link.dataset.artifact, parsed: parsed };
      var columns = $("#plot-columns");
      columns.replaceChildren();
      parsed.names.forEach(function (name, index) {
        var label = document.createElement("label");
        var box = document.createElement("input");
        box.type = "checkbox";
        box.value = String(index);
        box.checked = true;
        box.addEventListener("change", redraw);
        label.append(box, " " + name);
        columns.append(label);
      });
      redraw();
      element.dataset.state = "ready";
      $("#plot-card").scrollIntoView({ block: "nearest" });
    } catch (problem) {
      element.dataset.state = "error";
      error.textContent = "Cannot plot " + link.dataset.name + ": " + problem.message;
    }
  }

  /* The run page opened with ?plot=<artifact>: plot it once its link is there. */
  function autoPlot() {
    if (document.body.dataset.page !== "run") return;
    var wanted = new URLSearchParams(location.search).get("plot");
    if (!wanted || (plotted && plotted.artifact === wanted)) return;
    var link = document.querySelector(".plot-link[data-artifact=\"" + CSS.escape(wanted) + "\"]");
    if (link && $("#plot").dataset.state !== "loading") plotArtifact(link);
  }

  // --- the live console: server-sent events over fetch ----------------------------------------

  /* A parser of the text/event-stream format: feed it text, it calls onEvent({event, data, id}). */
  function sseParser(onEvent) {
    var buffer = "";
    var data = [];
    var name = "";
    var id = null;
    function line(text) {
      if (text === "") {
        if (data.length) onEvent({ event: name || "message", data: data.join("\n"), id: id });
        data = [];
        name = "";
        return;
      }
      if (text.charAt(0) === ":") return;
      var colon = text.indexOf(":");
      var field = colon < 0 ? text : text.slice(0, colon);
      var value = colon < 0 ? "" : text.slice(colon + 1);
      if (value.charAt(0) === " ") value = value.slice(1);
      if (field === "data") data.push(value);
      else if (field === "event") name = value;
      else if (field === "id") id = value;
    }
    return function feed(chunk) {
      buffer += chunk;
      var start = 0;
      var breaks = /\r\n|\r|\n/g;
      var match;
      while ((match = breaks.exec(buffer)) !== null) {
        // A lone \r at the end may be the first half of \r\n: wait for more text.
        if (match[0] === "\r" && match.index === buffer.length - 1) break;
        line(buffer.slice(start, match.index));
        start = breaks.lastIndex;
      }
      buffer = buffer.slice(start);
    };
  }

  async function followConsole() {
    var pre = $("#console");
    var status = $("#console-status");
    var url = "/v1/pipelines/" + encodeURIComponent(pre.dataset.pipeline) + "/runs/" +
      encodeURIComponent(pre.dataset.run) + "/console/stream";
    var lastId = null;
    var ended = false;
    function append(stream, text) {
      var follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
      var span = document.createElement("span");
      span.className = stream;
      span.textContent = text;
      pre.append(span);
      if (follow) pre.scrollTop = pre.scrollHeight;
    }
    var feed = sseParser(function (event) {
      if (event.id) lastId = event.id;
      if (event.event === "std_out" || event.event === "std_err") {
        append(event.event, event.data);
      } else if (event.event === "progress") {
        status.textContent = "running, " + event.data + "%";
      } else if (event.event === "state") {
        status.textContent = event.data;
        htmx.trigger(document.body, "ui:refresh");
      } else if (event.event === "end") {
        ended = true;
        pre.dataset.ended = "true";
        status.textContent = "ended: " + event.data;
        htmx.trigger(document.body, "ui:refresh");
      }
    });
    for (var attempt = 0; !ended && attempt < 30; attempt++) {
      var headers = { Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      try {
        var response = await api(url, { headers: headers });
        if (response.status === 401 || response.status === 403) {
          showLogin(keyProblem(response.status));
          return;
        }
        if (!response.ok) {
          status.textContent = await errorText(response);
          return;
        }
        status.textContent = "live";
        var reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          var chunk = await reader.read();
          if (chunk.done) break;
          feed(chunk.value);
        }
      } catch (problem) {
        status.textContent = "connection lost, reconnecting…";
      }
      if (!ended) await sleep(1000);
    }
  }

  // --- wiring -----------------------------------------------------------------------------

  document.addEventListener("click", function (event) {
    var target = event.target.closest("button.download, a.plot-link, button.run-workflow");
    if (!target) return;
    if (target.matches("button.download")) {
      download(target);
    } else if (target.matches("a.plot-link") && document.body.dataset.page === "run") {
      event.preventDefault();
      history.replaceState(null, "", "?plot=" + encodeURIComponent(target.dataset.artifact));
      plotArtifact(target);
    } else if (target.matches("button.run-workflow")) {
      runWorkflow(target);
    }
  });

  async function runWorkflow(button) {
    var error = button.parentElement.querySelector(".run-workflow-error");
    button.disabled = true;
    try {
      var response = await api("/v1/workflows/" + encodeURIComponent(button.dataset.workflow) + "/runs", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
      });
      if (!response.ok) throw new Error(await errorText(response));
      htmx.trigger(document.body, "ui:refresh");
    } catch (problem) {
      if (error) error.textContent = problem.message;
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("#login-form").addEventListener("submit", logIn);
    $("#logout").addEventListener("click", function () {
      sessionStorage.removeItem(STORAGE_KEY);
      location.reload();
    });
    var form = $("#start-run");
    if (form) {
      form.addEventListener("submit", startRun);
      $("#run-pipeline").addEventListener("change", showNewPipelineName);
      selectPipeline = new URLSearchParams(location.search).get("pipeline");
    }
    var mode = $("#plot-mode");
    if (mode) mode.addEventListener("change", redraw);
    if (apiKey()) showApp();
    else showLogin("");
  });

  window.WorkflowDashboard = { sseParser: sseParser, parseDefines: parseDefines };
})();
