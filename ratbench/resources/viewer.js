const DATA = JSON.parse(document.getElementById("ratbench-data").textContent);
const examples = DATA.examples;
const exampleSelect = document.getElementById("example");
const onlyWrong = document.getElementById("only-wrong");
const panes = Array.from(document.querySelectorAll(".pane"));

function labelName(names, index) {
  if (index === null || index === undefined) return "-";
  return index < names.length ? names[index] : String(index);
}

function isWrong(record) { return record.pred !== null && record.pred !== record.label; }

function visible() {
  const picked = panes.map(p => Number(p.querySelector("select").value));
  return examples.filter(ex => !onlyWrong.checked ||
    picked.some(c => DATA.cells[c].records[ex.id] && isWrong(DATA.cells[c].records[ex.id])));
}

function fillExamples() {
  const keep = exampleSelect.value;
  exampleSelect.textContent = "";
  for (const ex of visible()) {
    const option = document.createElement("option");
    option.value = ex.id;
    option.textContent = ex.id + " (" + labelName(DATA.label_names, ex.label) + ")";
    exampleSelect.appendChild(option);
  }
  if (Array.from(exampleSelect.options).some(o => o.value === keep)) exampleSelect.value = keep;
  render();
}

function renderPane(pane, ex) {
  const cell = DATA.cells[Number(pane.querySelector("select").value)];
  const meta = pane.querySelector(".meta");
  const text = pane.querySelector(".text");
  meta.textContent = "";
  text.textContent = "";
  pane.dataset.cell = cell.label;
  if (!ex) { meta.textContent = "no example to show"; return; }
  const record = cell.records[ex.id];
  if (!record) { meta.textContent = "not in this cell's test split"; return; }
  const verdict = document.createElement("span");
  if (record.pred !== null) {
    verdict.className = isWrong(record) ? "wrong" : "right";
    verdict.textContent = isWrong(record) ? " wrong" : " right";
  }
  meta.append("label " + labelName(cell.label_names, record.label) +
    " \u00b7 predicted " + labelName(cell.label_names, record.pred), verdict,
    " \\u00b7 P " + record.P.toFixed(1) + " R " + record.R.toFixed(1) + " F1 " + record.F1.toFixed(1) +
    " \\u00b7 " + record.sel.length + " selected, " + ex.gold.length + " gold words");
  if (ex.query) {
    const query = document.createElement("div");
    query.className = "query";
    query.textContent = "query: " + ex.query.join(" ");
    text.appendChild(query);
  }
  const selected = new Set(record.sel);
  const gold = new Set(ex.gold);
  ex.words.slice(0, record.length).forEach((word, i) => {
    const kind = selected.has(i) ? (gold.has(i) ? "tp" : "fp") : (gold.has(i) ? "fn" : "");
    const span = document.createElement("span");
    span.textContent = word;
    span.className = kind ? "tok " + kind : "tok";
    text.append(span, " ");
  });
  if (record.padding) {
    const pad = document.createElement("span");
    pad.className = "pad";
    pad.textContent = "(+" + record.padding + " selected padding positions)";
    text.appendChild(pad);
  }
}

function render() {
  const ex = examples.find(e => e.id === exampleSelect.value);
  panes.forEach(pane => renderPane(pane, ex));
}

function step(delta) {
  const n = exampleSelect.options.length;
  if (n) { exampleSelect.selectedIndex = (exampleSelect.selectedIndex + delta + n) % n; render(); }
}

panes.forEach(pane => pane.querySelector("select").addEventListener("change", fillExamples));
exampleSelect.addEventListener("change", render);
onlyWrong.addEventListener("change", fillExamples);
document.getElementById("prev").addEventListener("click", () => step(-1));
document.getElementById("next").addEventListener("click", () => step(1));
fillExamples();
