/* Recorder CSV parsing and plotting (uPlot). Exposed as window.WorkflowPlot.
 *
 * GridLAB-D recorder files: `#` header lines, the last one listing the columns
 * (`# timestamp,voltage_A,...`), then one row per sample: a timestamp such as
 * `2020-01-01 00:00:00 PST` and values that are plain numbers or complex numbers,
 * rectangular (`+a+bj`, `a+bi`) or polar (`+m+ad` in degrees, `+m-ar` in radians).
 */
(function () {
  "use strict";

  var NUMBER = "[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?";
  var SIGNED = "[+-](?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?";
  var REAL = new RegExp("^" + NUMBER + "$");
  var COMPLEX = new RegExp("^(" + NUMBER + ")(" + SIGNED + ")([ijdr])$");
  var IMAGINARY = new RegExp("^(" + NUMBER + ")([ij])$");
  var MODES = ["magnitude", "real", "imaginary", "angle"];

  /* Offsets from UTC in minutes of the zone names GridLAB-D writes. */
  var ZONES = {
    UTC: 0, GMT: 0, Z: 0, UT: 0, WET: 0, WEST: 60, CET: 60, CEST: 120, EET: 120, EEST: 180,
    MSK: 180, IST: 330, JST: 540, KST: 540, AEST: 600, AEDT: 660,
    AST: -240, ADT: -180, EST: -300, EDT: -240, CST: -360, CDT: -300, MST: -420, MDT: -360,
    PST: -480, PDT: -420, AKST: -540, AKDT: -480, HST: -600, HDT: -540,
  };
  var TIMESTAMP = /^(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d*)?))?\s*(?:([A-Za-z]{1,5})|([+-])(\d{2}):?(\d{2}))?$/;

  /* One value: {re, im, magnitude, angle (degrees), complex}, or null when not a number. */
  function parseValue(text) {
    var s = String(text).trim();
    if (REAL.test(s)) {
      var x = Number(s);
      return { re: x, im: 0, magnitude: x, angle: 0, complex: false };
    }
    var m = COMPLEX.exec(s);
    if (m) {
      var a = Number(m[1]);
      var b = Number(m[2]);
      if (m[3] === "j" || m[3] === "i") {
        return { re: a, im: b, magnitude: Math.hypot(a, b), angle: Math.atan2(b, a) * 180 / Math.PI, complex: true };
      }
      var radians = m[3] === "d" ? b * Math.PI / 180 : b;
      return {
        re: a * Math.cos(radians), im: a * Math.sin(radians), magnitude: Math.abs(a),
        angle: (a < 0 ? radians + Math.PI : radians) * 180 / Math.PI, complex: true,
      };
    }
    m = IMAGINARY.exec(s);
    if (m) {
      var y = Number(m[1]);
      return { re: 0, im: y, magnitude: Math.abs(y), angle: y < 0 ? -90 : 90, complex: true };
    }
    return null;
  }

  /* A timestamp as epoch seconds: `YYYY-MM-DD HH:MM:SS[.fff] [ZONE|+HH:MM]` (no zone, or
   * a zone name not listed above: UTC)
   * or a plain number of seconds. NaN when unreadable. */
  function parseTimestamp(text) {
    var s = String(text).trim();
    if (REAL.test(s)) return Number(s);
    var m = TIMESTAMP.exec(s);
    if (!m) return NaN;
    var seconds = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], 0) / 1000 + Number(m[6] || 0);
    var offset = 0;
    if (m[7]) {
      offset = ZONES[m[7].toUpperCase()] || 0;  // a zone not listed: read as UTC
    } else if (m[8]) {
      offset = (m[8] === "-" ? -1 : 1) * (Number(m[9]) * 60 + Number(m[10]));
    }
    return seconds - offset * 60;
  }

  function splitLine(line) {
    return line.split(",").map(function (cell) { return cell.trim(); });
  }

  /* The whole file: {timeColumn, names, times (epoch s, or row numbers when a timestamp
   * is unreadable), isTime, rows, series: {magnitude, real, imaginary, angle}[column]}. */
  function parseRecorderCsv(text) {
    var header = null;
    var rows = [];
    var lines = String(text).split(/\r\n|\r|\n/);
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i];
      if (!line.trim()) continue;
      if (line.charAt(0) === "#") {
        var body = line.slice(1).trim();
        if (body.indexOf(",") >= 0) header = splitLine(body);
        continue;
      }
      rows.push(splitLine(line));
    }
    var width = header ? header.length : (rows.length ? rows[0].length : 1);
    if (!header) {
      header = ["timestamp"];
      for (var c = 1; c < width; c++) header.push("column " + c);
    }
    var names = header.slice(1);
    var count = rows.length;
    var times = new Float64Array(count);
    var isTime = true;
    var series = names.map(function () {
      return {
        magnitude: new Float64Array(count), real: new Float64Array(count),
        imaginary: new Float64Array(count), angle: new Float64Array(count),
      };
    });
    for (var r = 0; r < count; r++) {
      var row = rows[r];
      times[r] = parseTimestamp(row[0]);
      if (Number.isNaN(times[r])) isTime = false;
      for (var j = 0; j < names.length; j++) {
        var v = parseValue(row[j + 1] === undefined ? "" : row[j + 1]);
        var s = series[j];
        s.magnitude[r] = v ? v.magnitude : NaN;
        s.real[r] = v ? v.re : NaN;
        s.imaginary[r] = v ? v.im : NaN;
        s.angle[r] = v ? v.angle : NaN;
      }
    }
    if (!isTime) for (var k = 0; k < count; k++) times[k] = k;
    return { timeColumn: header[0], names: names, times: times, isTime: isTime, rows: count, series: series };
  }

  var COLOURS = ["#2457c5", "#d92d20", "#079455", "#dc6803", "#7a5af8", "#0e9384", "#c11574", "#475467"];
  var chart = null;

  function withGaps(values) {
    var out = new Array(values.length);
    for (var i = 0; i < values.length; i++) out[i] = Number.isNaN(values[i]) ? null : values[i];
    return out;
  }

  /* Draw the selected columns of a parsed file in `element` (replacing any chart). */
  function render(element, parsed, mode, selected) {
    if (MODES.indexOf(mode) < 0) mode = "magnitude";
    if (chart) { chart.destroy(); chart = null; }
    var series = [{ label: parsed.isTime ? parsed.timeColumn : "row" }];
    var data = [Array.prototype.slice.call(parsed.times)];
    selected.forEach(function (j) {
      series.push({ label: parsed.names[j], stroke: COLOURS[j % COLOURS.length], width: 1.5, points: { show: false } });
      data.push(withGaps(parsed.series[j][mode]));
    });
    var options = {
      width: Math.max(320, element.clientWidth || 800),
      height: 380,
      series: series,
      scales: { x: { time: parsed.isTime } },
      axes: [
        { label: parsed.isTime ? "time (this browser's time zone)" : "row" },
        { label: mode === "angle" ? "angle (degrees)" : mode, size: 70 },
      ],
    };
    chart = new window.uPlot(options, data, element);
    element.dataset.points = String(parsed.rows);
    element.dataset.series = String(selected.length);
    element.dataset.mode = mode;
    return chart;
  }

  window.addEventListener("resize", function () {
    if (chart && chart.root && chart.root.parentElement) {
      chart.setSize({ width: Math.max(320, chart.root.parentElement.clientWidth), height: 380 });
    }
  });

  window.WorkflowPlot = {
    parseValue: parseValue,
    parseTimestamp: parseTimestamp,
    parseRecorderCsv: parseRecorderCsv,
    render: render,
    modes: MODES,
  };
})();
