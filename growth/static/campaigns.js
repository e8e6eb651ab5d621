// The campaign editor. The spec §2 document lives as JSON in the form's one field (#definition); every
// section of the form edits that document, and the server parses only it. While editing, the document
// is checked (schema, compliance, message previews) and the audience counted, debounced, on the server.
(function () {
  "use strict";
  var form = document.getElementById("campaign-form");
  var dataNode = document.getElementById("editor-data");
  if (!form || !dataNode) { return; }
  var DATA = JSON.parse(dataNode.textContent);
  var CAT = DATA.catalogue;
  var T = DATA.text;
  var field = document.getElementById("definition");
  var doc = {};
  var original = null;
  var segments = DATA.segments || [];

  // --- small helpers ---------------------------------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else if (k === "className") { node.className = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }
  function options(select, entries, selected) {
    entries.forEach(function (pair) {
      var o = el("option", {value: pair[0], text: pair[1]});
      if (String(pair[0]) === String(selected)) { o.selected = true; }
      select.appendChild(o);
    });
    return select;
  }
  function pairs(obj) { return Object.keys(obj).map(function (k) { return [k, obj[k]]; }); }
  function fmt(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_m, name) { return values[name]; });
  }
  function isEmpty(v) {
    return v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0) ||
      (typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0);
  }
  // Set a dotted path in the document; an empty value removes the key and any object left empty by it.
  function setPath(obj, path, value) {
    var keys = path.split(".");
    var chain = [obj];
    for (var i = 0; i < keys.length - 1; i++) {
      var cur = chain[i];
      if (typeof cur[keys[i]] !== "object" || cur[keys[i]] === null) { cur[keys[i]] = {}; }
      chain.push(cur[keys[i]]);
    }
    var last = chain[chain.length - 1];
    if (isEmpty(value)) { delete last[keys[keys.length - 1]]; } else { last[keys[keys.length - 1]] = value; }
    for (var j = chain.length - 1; j > 0; j--) {
      if (isEmpty(chain[j])) { delete chain[j - 1][keys[j - 1]]; } else { break; }
    }
  }
  function getPath(obj, path) {
    return path.split(".").reduce(function (o, k) { return o && typeof o === "object" ? o[k] : undefined; }, obj);
  }

  // Values between the document (spec strings, fen-free) and inputs (people's units).
  function intOf(v) { return /^\d+$/.test(v.trim()) ? parseInt(v.trim(), 10) : (v.trim() === "" ? undefined : v.trim()); }
  function pctToRate(v) {
    v = v.trim();
    if (v === "") { return undefined; }
    if (!/^\d{1,2}(\.\d{1,2})?$/.test(v)) { return v; }  // the server names what is wrong with it
    var bp = Math.round(parseFloat(v) * 100);
    return "0." + String(bp).padStart(4, "0");
  }
  function rateToPct(v) {
    if (typeof v !== "string" || !/^0\.\d{1,4}$/.test(v)) { return v === undefined ? "" : String(v); }
    return (Math.round(parseFloat(v) * 10000) / 100).toFixed(2);
  }
  function isoToLocal(v) {  // "2026-12-01T00:00:00+08:00" -> "2026-12-01T00:00" in Asia/Shanghai
    if (!v) { return ""; }
    var d = new Date(v);
    if (isNaN(d.getTime())) { return ""; }
    return new Date(d.getTime() + 8 * 3600 * 1000).toISOString().slice(0, 16);
  }
  function localToIso(v) { return v ? v + ":00+08:00" : undefined; }
  function mapToText(m) { return m ? Object.keys(m).map(function (k) { return k + "=" + m[k]; }).join("\n") : ""; }
  function textToMap(t) {
    var out = {};
    t.split("\n").forEach(function (line) {
      var at = line.indexOf("=");
      if (line.trim() === "") { return; }
      if (at < 0) { out[line.trim()] = ""; } else { out[line.slice(0, at).trim()] = line.slice(at + 1).trim(); }
    });
    return Object.keys(out).length ? out : undefined;
  }
  function listOf(t) { var a = t.split(/[,，\s]+/).filter(Boolean); return a.length ? a : undefined; }

  // --- messages: one per channel, kept in the document's order ---------------------------------------
  function messageIndex(channel) {
    var list = doc.messages || [];
    for (var i = 0; i < list.length; i++) { if (list[i] && list[i].channel === channel) { return i; } }
    return -1;
  }
  function resolve(bind) {  // "msg:sms.text" -> [object, key, document path]
    if (bind.indexOf("msg:") === 0) {
      var rest = bind.slice(4), channel = rest.split(".")[0], key = rest.slice(channel.length + 1);
      var i = messageIndex(channel);
      return i < 0 ? null : {target: doc.messages[i], path: key, docPath: "messages[" + i + "]." + key};
    }
    return {target: doc, path: bind, docPath: bind};
  }

  // --- bound inputs --------------------------------------------------------------------------------
  function readInput(input) {
    var kind = input.getAttribute("data-kind"), v = input.type === "checkbox" ? input.checked : input.value;
    switch (kind) {
      case "int": return intOf(v);
      case "money": return v.trim() === "" ? undefined : v.trim();
      case "rate": return pctToRate(v);
      case "datetime": return localToIso(v);
      case "map": return textToMap(v);
      case "list": return listOf(v);
      case "bool": return v ? true : undefined;
      case "multi": return Array.prototype.filter.call(input.options, function (o) { return o.selected; })
        .map(function (o) { return o.value; });
      default: return v === "" ? undefined : v;
    }
  }
  function showValue(input, value) {
    var kind = input.getAttribute("data-kind");
    if (input.type === "checkbox") { input.checked = !!value; return; }
    if (kind === "datetime") { input.value = isoToLocal(value); return; }
    if (kind === "map") { input.value = mapToText(value); return; }
    if (kind === "list") { input.value = Array.isArray(value) ? value.join(", ") : (value || ""); return; }
    if (kind === "rate") { input.value = rateToPct(value); return; }
    if (kind === "multi") {
      Array.prototype.forEach.call(input.options, function (o) { o.selected = Array.isArray(value) && value.indexOf(o.value) >= 0; });
      return;
    }
    input.value = value === undefined || value === null ? "" : (typeof value === "object" ? JSON.stringify(value) : value);
  }
  function refreshBound() {
    form.querySelectorAll("[data-bind]").forEach(function (input) {
      var r = resolve(input.getAttribute("data-bind"));
      input.setAttribute("data-path", r ? r.docPath : "");
      showValue(input, r ? getPath(r.target, r.path) : undefined);
    });
  }
  form.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.hasAttribute || !input.hasAttribute("data-bind")) { return; }
    var r = resolve(input.getAttribute("data-bind"));
    if (!r) { return; }
    setPath(r.target, r.path, readInput(input));
    if (input.getAttribute("data-bind") === "trigger.on") { syncWhen(); }
    if (input.getAttribute("data-bind") === "type") { renderRewards(); }
    if (input.getAttribute("data-bind") === "msg:wechat.kind") { syncChannels(); }
    changed(false);
  });

  // --- trigger or schedule, schedule kind, entry --------------------------------------------------------
  var stash = {};
  function tomorrowAt10() {
    var d = new Date(Date.now() + 8 * 3600 * 1000 + 24 * 3600 * 1000);
    return d.toISOString().slice(0, 10) + "T10:00:00+08:00";
  }
  function syncWhen() {
    var mode = doc.trigger ? "trigger" : "schedule";
    form.querySelectorAll("[data-mode=when]").forEach(function (r) { r.checked = r.value === mode; });
    form.querySelectorAll("[data-show=trigger]").forEach(function (n) { n.hidden = mode !== "trigger"; });
    form.querySelectorAll("[data-show=schedule]").forEach(function (n) { n.hidden = mode !== "schedule"; });
    var investment = doc.trigger && CAT.investment_triggers.indexOf(doc.trigger.on) >= 0;
    var call = doc.trigger && doc.trigger.on === "crm_call";
    if (doc.trigger && doc.trigger.conditions) {  // keep only the conditions the trigger takes
      var kept = {};
      Object.keys(doc.trigger.conditions).forEach(function (k) {
        if ((k === "outcomes") ? call : investment) { kept[k] = doc.trigger.conditions[k]; }
      });
      if (Object.keys(kept).length) { doc.trigger.conditions = kept; } else { delete doc.trigger.conditions; }
    }
    if (call && !(doc.trigger.conditions && doc.trigger.conditions.outcomes)) {  // a call trigger names its outcomes
      doc.trigger.conditions = {outcomes: ["interested"]};
      refreshBound();
    }
    form.querySelectorAll("[data-show=investment]").forEach(function (n) { n.hidden = !investment; });
    form.querySelectorAll("[data-show=crm_call]").forEach(function (n) { n.hidden = !call; });
    var sched = doc.schedule && doc.schedule.cron !== undefined ? "cron" : "at";
    form.querySelectorAll("[data-mode=schedule]").forEach(function (r) { r.checked = r.value === sched; });
    var at = document.getElementById("f-schedule-at"), cron = document.getElementById("f-schedule-cron");
    if (at) { at.closest("div").hidden = sched !== "at"; }
    if (cron) { cron.closest("div").hidden = sched !== "cron"; }
    var every = doc.entry && doc.entry.every_days !== undefined;
    form.querySelectorAll("[data-mode=entry]").forEach(function (r) { r.checked = r.value === (every ? "every" : "once"); });
    var everyInput = form.querySelector("[data-bind='entry.every_days']");
    if (everyInput) { everyInput.disabled = !every; }
  }
  form.addEventListener("change", function (event) {
    var radio = event.target, mode = radio.getAttribute && radio.getAttribute("data-mode");
    if (!mode) { return; }
    if (mode === "when") {
      if (radio.value === "trigger" && !doc.trigger) {
        stash.schedule = doc.schedule; delete doc.schedule; doc.trigger = stash.trigger || {on: "registered"};
      } else if (radio.value === "schedule" && !doc.schedule) {
        stash.trigger = doc.trigger; delete doc.trigger; doc.schedule = stash.schedule || {at: tomorrowAt10()};
      }
    } else if (mode === "schedule") {
      doc.schedule = radio.value === "cron" ? {cron: (stash.cron || "0 10 * * *")} : {at: stash.at || tomorrowAt10()};
    } else if (mode === "entry") {
      doc.entry = radio.value === "every" ? {every_days: (doc.entry && doc.entry.every_days) || 30} : {once: true};
    }
    refreshBound();
    syncWhen();
    changed(false);
  });

  // --- the segment builder -----------------------------------------------------------------------------
  function defaultValue(fieldName, op) {
    var input = CAT.fields[fieldName].input;
    if (op === "between") {
      if (input === "dates") { var today = new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10); return [today, today]; }
      if (input === "money") { return ["0.00", "10000.00"]; }
      return [0, 30];
    }
    switch (input) {
      case "codes": return [];
      case "milestone": return "first_investment";
      case "channel": return "sms";
      case "money": return "10000.00";
      case "text": return "";
      default: return input === "count" ? 1 : 7;
    }
  }
  function conditionRow(cond, i) {
    var path = "audience.all[" + i + "]";
    var spec = CAT.fields[cond.field] || {ops: [cond.op], input: "text", label: cond.field};
    var fieldSel = options(el("select", {className: "form-select form-select-sm", "aria-label": T.field, "data-path": path + ".field"}),
      pairs(CAT.fields).map(function (p) { return [p[0], p[1].label]; }), cond.field);
    var opSel = options(el("select", {className: "form-select form-select-sm", "aria-label": T.operator, "data-path": path + ".op"}),
      spec.ops.map(function (o) { return [o, CAT.operators[o] || o]; }), cond.op);
    fieldSel.addEventListener("change", function () {
      var f = fieldSel.value, op = CAT.fields[f].ops[0];
      doc.audience.all[i] = {field: f, op: op, value: defaultValue(f, op)};
      renderAudience(); changed(true);
    });
    opSel.addEventListener("change", function () {
      var wasPair = cond.op === "between", isPair = opSel.value === "between";
      cond.op = opSel.value;
      if (wasPair !== isPair) { cond.value = defaultValue(cond.field, cond.op); }
      renderAudience(); changed(true);
    });
    var valueBox = el("div", {className: "d-flex flex-wrap gap-1 align-items-center", "data-path": path + ".value"});
    function numberInput(value, onValue, label, kind) {
      var inp = el("input", {className: "form-control form-control-sm", style: "width: 7rem", "aria-label": label,
        type: kind === "money" ? "text" : "number", inputmode: kind === "money" ? "decimal" : "numeric", min: "0"});
      inp.value = value === undefined || value === null ? "" : value;
      inp.addEventListener("input", function () {
        onValue(kind === "money" ? inp.value.trim() : intOf(inp.value)); changed(true);
      });
      return inp;
    }
    var kind = spec.input;
    if (kind === "codes") {
      var multi = options(el("select", {className: "form-select form-select-sm", multiple: "multiple", size: "3", "aria-label": T.value}),
        pairs(CAT.acquisition_channels), null);
      var chosen = Array.isArray(cond.value) ? cond.value : [];
      Array.prototype.forEach.call(multi.options, function (o) { o.selected = chosen.indexOf(o.value) >= 0; });
      chosen.forEach(function (code) {  // a code no longer in the list stays visible and selected
        if (!CAT.acquisition_channels[code]) { var o = el("option", {value: code, text: code}); o.selected = true; multi.appendChild(o); }
      });
      multi.addEventListener("change", function () {
        cond.value = Array.prototype.filter.call(multi.options, function (o) { return o.selected; }).map(function (o) { return o.value; });
        changed(true);
      });
      valueBox.appendChild(multi);
    } else if (kind === "dates") {
      [0, 1].forEach(function (k) {
        var d = el("input", {type: "date", className: "form-control form-control-sm", style: "width: 10rem", "aria-label": k ? T.high : T.low});
        d.value = Array.isArray(cond.value) ? cond.value[k] || "" : "";
        d.addEventListener("input", function () { if (!Array.isArray(cond.value)) { cond.value = ["", ""]; } cond.value[k] = d.value; changed(true); });
        valueBox.appendChild(d);
        if (k === 0) { valueBox.appendChild(el("span", {className: "text-muted small", text: "–"})); }
      });
    } else if (kind === "milestone") {
      var ms = options(el("select", {className: "form-select form-select-sm", style: "width: auto", "aria-label": T.value}), pairs(CAT.milestones), cond.value);
      ms.addEventListener("change", function () { cond.value = ms.value; changed(true); });
      valueBox.appendChild(ms);
      valueBox.appendChild(numberInput(cond.within_days, function (v) { if (v === undefined) { delete cond.within_days; } else { cond.within_days = v; } }, T.within_days, "int"));
      valueBox.lastChild.setAttribute("placeholder", T.within_days);
      valueBox.lastChild.style.width = "11rem";
    } else if (kind === "channel") {
      var ch = options(el("select", {className: "form-select form-select-sm", style: "width: auto", "aria-label": T.value}), pairs(CAT.message_channels), cond.value);
      ch.addEventListener("change", function () { cond.value = ch.value; changed(true); });
      valueBox.appendChild(ch);
    } else if (kind === "text") {
      var tx = el("input", {className: "form-control form-control-sm", style: "width: 12rem", maxlength: "50", "aria-label": T.value});
      tx.value = cond.value || "";
      tx.addEventListener("input", function () { cond.value = tx.value; changed(true); });
      valueBox.appendChild(tx);
    } else if (cond.op === "between") {
      [0, 1].forEach(function (k) {
        valueBox.appendChild(numberInput(Array.isArray(cond.value) ? cond.value[k] : "", function (v) {
          if (!Array.isArray(cond.value)) { cond.value = [0, 0]; }
          cond.value[k] = v === undefined ? "" : v;
        }, k ? T.high : T.low, kind));
        if (k === 0) { valueBox.appendChild(el("span", {className: "text-muted small", text: "–"})); }
      });
    } else {
      valueBox.appendChild(numberInput(cond.value, function (v) { cond.value = v === undefined ? "" : v; }, T.value, kind));
    }
    var remove = el("button", {type: "button", className: "btn btn-sm btn-outline-danger", text: "×", "aria-label": T.remove, title: T.remove});
    remove.addEventListener("click", function () { doc.audience.all.splice(i, 1); renderAudience(); changed(true); });
    return el("div", {className: "d-flex flex-wrap gap-2 align-items-center mb-2 condition-row", "data-path": path}, [
      el("div", {style: "min-width: 9rem"}, [fieldSel]), el("div", {style: "min-width: 6rem"}, [opSel]), valueBox, remove,
    ]);
  }
  function renderAudience() {
    var box = document.getElementById("audience-rows");
    box.textContent = "";
    var list = (doc.audience && doc.audience.all) || [];
    list.forEach(function (cond, i) { box.appendChild(conditionRow(cond, i)); });
  }
  document.getElementById("add-condition").addEventListener("click", function () {
    if (!doc.audience || typeof doc.audience !== "object") { doc.audience = {}; }
    if (!Array.isArray(doc.audience.all)) { doc.audience.all = []; }
    doc.audience.all.push({field: "investment_count", op: "gte", value: 1});
    renderAudience(); changed(true);
  });

  // --- saved segments --------------------------------------------------------------------------------
  var segSelect = document.getElementById("segment-select"), segStatus = document.getElementById("segment-status");
  function renderSegments() {
    while (segSelect.options.length > 1) { segSelect.remove(1); }
    options(segSelect, segments.map(function (s) { return [s.id, s.name]; }), null);
  }
  function say(text, ok) { segStatus.textContent = text; segStatus.className = "col-12 small " + (ok ? "text-success" : "text-danger"); }
  document.getElementById("segment-load").addEventListener("click", function () {
    var s = segments.filter(function (x) { return String(x.id) === segSelect.value; })[0];
    if (!s) { say(T.pick_segment, false); return; }
    doc.audience = JSON.parse(JSON.stringify(s.audience));
    renderAudience(); changed(true); say(T.loaded_segment + s.name, true);
  });
  document.getElementById("segment-save").addEventListener("click", function () {
    var name = document.getElementById("segment-name").value.trim();
    if (!name) { say(T.segment_name, false); return; }
    post(DATA.urls.segments, {name: name, audience: doc.audience || {}}).then(function (answer) {
      if (answer.ok) { segments = answer.body.segments; renderSegments(); segSelect.value = String(answer.body.segment.id); say(T.saved_segment + name, true); }
      else { say((answer.body.errors || []).map(function (e) { return e.message; }).join("；") || answer.body.error, false); }
    });
  });
  document.getElementById("segment-delete").addEventListener("click", function (event) {
    if (!segSelect.value) { say(T.pick_segment, false); return; }
    if (!window.confirm(event.target.getAttribute("data-confirm-text"))) { return; }
    post(DATA.urls.segment_delete.replace(/\/0\/delete$/, "/" + segSelect.value + "/delete"), {}).then(function (answer) {
      if (answer.ok) { segments = answer.body.segments; renderSegments(); say(T.deleted_segment, true); } else { say(answer.body.error, false); }
    });
  });

  // --- rewards -------------------------------------------------------------------------------------
  function rewardRow(reward, i) {
    var path = "rewards[" + i + "]";
    var fields = CAT.reward_fields[reward.kind] || [];
    var head = el("div", {className: "d-flex flex-wrap justify-content-between align-items-center gap-2 mb-1"}, [
      el("strong", {className: "small", text: CAT.reward_kinds[reward.kind] || reward.kind}),
    ]);
    var remove = el("button", {type: "button", className: "btn btn-sm btn-outline-danger", text: T.remove});
    remove.addEventListener("click", function () { doc.rewards.splice(i, 1); renderRewards(); changed(false); });
    head.appendChild(remove);
    var grid = el("div", {className: "row g-2"});
    if (doc.type === "referral" || reward.to !== undefined) {
      var to = options(el("select", {className: "form-select form-select-sm", id: "reward-" + i + "-to", "data-path": path + ".to"}),
        [["", "—"]].concat(pairs(CAT.reward_to)), reward.to || "");
      to.addEventListener("change", function () { if (to.value) { reward.to = to.value; } else { delete reward.to; } changed(false); });
      grid.appendChild(el("div", {className: "col-6 col-md-3"}, [el("label", {className: "form-label small mb-1", "for": "reward-" + i + "-to", text: T.to}), to]));
    }
    fields.forEach(function (f) {
      var id = "reward-" + i + "-" + f.name;
      var inp = el("input", {className: "form-control form-control-sm", id: id, "data-path": path + "." + f.name,
        type: f.input === "int" ? "number" : "text", inputmode: f.input === "int" ? "numeric" : "decimal", min: "0"});
      inp.value = f.input === "rate" ? rateToPct(reward[f.name]) : (reward[f.name] === undefined ? "" : reward[f.name]);
      inp.addEventListener("input", function () {
        var v = f.input === "int" ? intOf(inp.value) : f.input === "rate" ? pctToRate(inp.value) : (inp.value.trim() || undefined);
        if (v === undefined) { delete reward[f.name]; } else { reward[f.name] = v; }
        changed(false);
      });
      var label = el("label", {className: "form-label small mb-1", "for": id, text: f.label + (f.required ? " *" : "")});
      grid.appendChild(el("div", {className: "col-6 col-md-3"}, [label, inp]));
    });
    return el("div", {className: "border rounded p-2 mb-2 reward-row", "data-path": path, "data-kind": reward.kind}, [head, grid]);
  }
  function renderRewards() {
    var box = document.getElementById("reward-rows");
    box.textContent = "";
    (doc.rewards || []).forEach(function (r, i) { box.appendChild(rewardRow(r, i)); });
  }
  var REWARD_DEFAULTS = {
    cash: {amount: "10.00"}, voucher: {amount: "20.00", valid_days: 30},
    rate_boost: {annual_rate: "0.0100", max_days: 30, valid_days: 7},
    experience_funds: {amount: "5000.00", annual_rate: "0.0800", days: 3, valid_days: 7},
    cashback: {rate: "0.0050", hold_days: 30},
  };
  document.getElementById("add-reward").addEventListener("click", function () {
    var kind = document.getElementById("reward-kind").value;
    var reward = Object.assign({kind: kind}, REWARD_DEFAULTS[kind] || {});
    if (doc.type === "referral") { reward.to = "referrer"; }
    if (!Array.isArray(doc.rewards)) { doc.rewards = []; }
    doc.rewards.push(reward);
    renderRewards(); changed(false);
  });

  // --- message channels on/off ---------------------------------------------------------------------
  var MESSAGE_DEFAULTS = {
    sms: {channel: "sms", text: ""}, email: {channel: "email", subject: "", text: ""},
    wechat: {channel: "wechat", kind: "mass", text: ""},
  };
  function syncChannels() {
    form.querySelectorAll("[data-toggle-channel]").forEach(function (box) {
      var channel = box.getAttribute("data-toggle-channel"), on = messageIndex(channel) >= 0;
      box.checked = on;
      form.querySelectorAll("[data-show-channel=" + channel + "]").forEach(function (n) { n.hidden = !on; });
    });
    var wechat = messageIndex("wechat") >= 0 ? doc.messages[messageIndex("wechat")] : null;
    form.querySelectorAll(".wechat-template").forEach(function (n) { n.hidden = !wechat || wechat.kind !== "template"; });
  }
  form.addEventListener("change", function (event) {
    var channel = event.target.getAttribute && event.target.getAttribute("data-toggle-channel");
    if (!channel) { return; }
    if (!Array.isArray(doc.messages)) { doc.messages = []; }
    var i = messageIndex(channel);
    if (event.target.checked && i < 0) { doc.messages.push(JSON.parse(JSON.stringify(MESSAGE_DEFAULTS[channel]))); }
    if (!event.target.checked && i >= 0) { doc.messages.splice(i, 1); }
    if (!doc.messages.length) { delete doc.messages; }
    refreshBound(); syncChannels(); changed(false);
  });

  // --- problems next to their fields -----------------------------------------------------------------
  function clearProblems() {
    form.querySelectorAll(".is-invalid").forEach(function (n) { n.classList.remove("is-invalid"); });
    form.querySelectorAll(".problem-note").forEach(function (n) { n.remove(); });
  }
  function target(path) {
    var p = path;
    while (true) {
      var nodes = form.querySelectorAll("[data-path]");
      for (var k = 0; k < nodes.length; k++) {
        if (nodes[k].getAttribute("data-path") === p && !nodes[k].closest("[hidden]")) { return nodes[k]; }
      }
      if (!p) { return null; }
      var cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
      p = cut > 0 ? p.slice(0, cut) : "";
    }
  }
  function showProblems(problems) {
    clearProblems();
    problems.forEach(function (problem) {
      var node = target(problem.path) || field;
      if (node.matches("input, select, textarea")) { node.classList.add("is-invalid"); }
      var note = el("div", {className: "problem-note small " + (problem.kind === "compliance" ? "text-warning-emphasis" : "text-danger"),
        "data-problem-path": problem.path, "data-code": problem.code, text: problem.message});
      var anchor = node.matches("input, select, textarea") ? node : null;
      if (anchor) { anchor.insertAdjacentElement("afterend", note); } else { node.appendChild(note); }
    });
  }

  // --- talking to the server ---------------------------------------------------------------------------
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": DATA.csrf, "Accept": "application/json"},
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().then(function (json) { return {ok: response.ok, status: response.status, body: json}; },
        function () { return {ok: false, status: response.status, body: {}}; });
    }, function () { return {ok: false, status: 0, body: {}}; });
  }
  function timer(fn, ms) { var t = null; return function () { clearTimeout(t); t = setTimeout(fn, ms); }; }
  var checkSeq = 0, countSeq = 0;
  var liveBody = document.getElementById("live-check-body"), previewBox = document.getElementById("live-preview");
  function problemList(title, list, style) {
    var ul = el("ul", {className: "mb-0 ps-3"});
    list.forEach(function (p) { ul.appendChild(el("li", {"data-path": p.path, "data-code": p.code}, [p.path ? el("code", {text: p.path + " "}) : null, document.createTextNode(p.message)])); });
    return el("div", {className: "alert alert-" + style + " py-2 mb-2"}, [el("div", {className: "fw-semibold", text: title}), ul]);
  }
  var runCheck = timer(function () {
    var seq = ++checkSeq;
    liveBody.textContent = T.checking;
    liveBody.className = "small text-muted";
    post(DATA.urls.check, doc).then(function (answer) {
      if (seq !== checkSeq) { return; }
      liveBody.textContent = "";
      if (!answer.ok) { liveBody.textContent = T.failed; return; }
      var errors = answer.body.errors || [], compliance = answer.body.compliance || [];
      liveBody.className = "small";
      if (errors.length) { liveBody.appendChild(problemList(T.schema, errors, "danger")); }
      if (compliance.length) { liveBody.appendChild(problemList(T.compliance, compliance, "warning")); }
      if (!errors.length && !compliance.length) { liveBody.appendChild(el("div", {className: "text-success", id: "check-ok", text: T.ok})); }
      liveBody.setAttribute("data-state", errors.length ? "invalid" : compliance.length ? "noncompliant" : "ok");
      showProblems(errors.concat(compliance.map(function (p) { return Object.assign({kind: "compliance"}, p); })));
      renderPreviews(answer.body.previews || [], errors.length > 0);
    });
  }, 400);
  var runCount = timer(function () {
    var seq = ++countSeq;
    post(DATA.urls.count, {audience: doc.audience || {}}).then(function (answer) {
      if (seq !== countSeq) { return; }
      var counted = answer.ok && typeof answer.body.count === "number";
      var text = counted ? answer.body.count.toLocaleString() : T.count_error;
      document.querySelectorAll(".audience-count").forEach(function (n) { n.textContent = text; n.setAttribute("data-count", counted ? answer.body.count : ""); });
    });
  }, 400);
  function renderPreviews(previews, stale) {
    var sms = document.getElementById("sms-length");
    if (stale) { return; }  // keep the last good preview while the document does not parse
    previewBox.textContent = "";
    if (sms) { sms.textContent = ""; }
    if (!previews.length) { previewBox.appendChild(el("p", {className: "text-muted mb-0", text: T.no_messages})); return; }
    previews.forEach(function (p) {
      var card = el("div", {className: "border rounded p-2 mb-2", "data-channel": p.channel}, [el("div", {className: "fw-semibold", text: CAT.message_channels[p.channel] || p.channel})]);
      var f = p.fields || {};
      if (f.subject) { card.appendChild(el("div", {text: T.subject + "：" + f.subject})); }
      if (f.text !== undefined) {
        var sign = p.sms && p.sms.sign_name ? "【" + p.sms.sign_name + "】" : "";
        card.appendChild(el("pre", {className: "bg-light p-2 mb-1 text-wrap small", text: sign + f.text}));
      }
      Object.keys(f).filter(function (k) { return k.indexOf("params.") === 0 || k.indexOf("data.") === 0; }).forEach(function (k) {
        card.appendChild(el("div", {className: "small"}, [el("span", {className: "mono", text: k.split(".").slice(1).join(".") + ": "}), document.createTextNode(f[k])]));
      });
      Object.keys(p.errors || {}).forEach(function (k) { card.appendChild(el("div", {className: "text-danger", text: T.preview_error + k + ": " + p.errors[k]})); });
      if (p.sms) {
        var line = fmt(T.sms_length, {units: p.sms.units, parts: p.sms.segments}) + (p.sms.sign_name ? T.with_sign : "");
        card.appendChild(el("div", {className: "text-muted sms-parts", "data-parts": p.sms.segments, text: line}));
        if (sms) { sms.textContent = line; }
      }
      previewBox.appendChild(card);
    });
  }

  // --- the document as the single source ---------------------------------------------------------------
  var broken = false;  // the field holds text that is not JSON: keep it as typed until it is fixed or the form is used
  function changed(audience) {
    broken = false;
    field.value = JSON.stringify(doc, null, 2);
    runCheck();
    if (audience) { runCount(); }
  }
  function renderAll() {
    refreshBound(); syncWhen(); renderAudience(); renderRewards(); syncChannels();
  }
  function load(text) {
    var parsed;
    try { parsed = JSON.parse(text); } catch (e) { return e.message; }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) { return "{}"; }
    doc = parsed;
    return null;
  }
  field.addEventListener("change", function () {
    var status = document.getElementById("definition-status");
    var error = load(field.value);
    if (error) { broken = true; status.textContent = T.bad_json + " " + error; status.className = "form-text text-danger"; return; }
    broken = false;
    status.textContent = T.json_ok; status.className = "form-text text-success";
    renderAll(); runCheck(); runCount();
  });
  form.addEventListener("submit", function (event) {
    if (broken) { return; }  // the server answers the text as typed, with its problem
    field.value = JSON.stringify(doc, null, 2);
    var message = form.getAttribute("data-confirm-draft");
    if (!message || original === null) { return; }
    var strip = function (d) { var c = JSON.parse(JSON.stringify(d)); delete c.name; return JSON.stringify(c); };
    if (strip(doc) !== strip(original) && !window.confirm(message)) { event.preventDefault(); }
  });

  var loadError = load(field.value);
  if (loadError) { broken = true; document.getElementById("advanced").open = true; } else { original = JSON.parse(JSON.stringify(doc)); }
  renderSegments();
  renderAll();
  if (DATA.problems && DATA.problems.length) { showProblems(DATA.problems); }
  runCheck();
  runCount();
})();
