// The sample browser: rows from the JSON above, 50 to a page, filters; text only through textContent.
(function () {
  "use strict";
  const PAGE = 50;
  const data = JSON.parse(document.getElementById("samples-data").textContent);
  const tests = {
    all: () => true,
    errors: (row) => row[5].some((answer) => answer !== null && answer[0] === "error"),
    unscored: (row) => row[5].some((answer) => answer !== null && answer[0] === "unscored"),
    flipped: (row) => row[4] === true,
  };
  function cell(tr, text, kind) {
    const td = document.createElement("td");
    td.className = kind;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }
  function answerCell(tr, answer) {
    if (answer === null) {
      cell(tr, "not run", "missing");
      return;
    }
    const td = cell(tr, "", "answer");
    const status = document.createElement("div");
    status.className = "status " + answer[0];
    status.textContent = answer[0] + (answer[1] ? " \u00b7 " + answer[1] : "");
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = answer[0] === "error" ? answer[3] : answer[2];
    td.append(status, text);
  }
  document.querySelectorAll("[data-browser]").forEach((section) => {
    const rows = data.tasks[Number(section.dataset.browser)].rows;
    const body = section.querySelector("tbody");
    const count = section.querySelector(".count");
    const state = { filter: "all", page: 0 };
    function show() {
      const shown = rows.filter(tests[state.filter]);
      const pages = Math.max(1, Math.ceil(shown.length / PAGE));
      state.page = Math.min(Math.max(state.page, 0), pages - 1);
      const trs = shown.slice(state.page * PAGE, (state.page + 1) * PAGE).map((row) => {
        const tr = document.createElement("tr");
        tr.className = row[4] ? "flipped" : "";
        cell(tr, row[0] + (row[1] ? " (repeat " + row[1] + ")" : ""), "id");
        cell(tr, row[2], "text");
        cell(tr, row[3], "text");
        row[5].forEach((answer) => answerCell(tr, answer));
        return tr;
      });
      body.replaceChildren(...trs);
      count.textContent = shown.length + " of " + rows.length + " samples, page " + (state.page + 1) + " of " + pages;
    }
    section.querySelectorAll("button[data-filter]").forEach((button) => {
      button.addEventListener("click", () => {
        state.filter = button.dataset.filter;
        state.page = 0;
        section.querySelectorAll("button[data-filter]").forEach((other) => {
          other.setAttribute("aria-pressed", String(other === button));
        });
        show();
      });
    });
    section.querySelectorAll("button[data-page]").forEach((button) => {
      button.addEventListener("click", () => {
        state.page += Number(button.dataset.page);
        show();
      });
    });
    show();
  });
})();
