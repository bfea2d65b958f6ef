// Easel web: selection (click, shift-click), curation calls, and live updates by server-sent events.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

function notice(text, error = false) {
  const box = document.getElementById("notice");
  if (!box) return;
  box.textContent = text;
  box.classList.toggle("error", error);
  box.hidden = false;
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf()},
    body: JSON.stringify(body ?? {}),
  });
  const data = await response.json().catch(() => ({error: response.statusText}));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function showTimes(root) {
  root.querySelectorAll("time[data-ms]").forEach((t) => { t.textContent = new Date(+t.dataset.ms).toLocaleString(); });
  root.querySelectorAll("time[data-eta]").forEach((t) => {
    const s = Math.max(0, Math.round((+t.dataset.eta - Date.now()) / 1000));
    t.textContent = s < 1 ? "starting" : `in ${s} s`;
  });
}

// --- a job's grid --------------------------------------------------------------------------------------------

function setupJob(grid) {
  const jobId = grid.dataset.job;
  let last = null;  // the last figure clicked, for shift-click ranges
  const figures = () => [...grid.querySelectorAll("figure.image")];
  const selected = () => figures().filter((f) => f.classList.contains("selected")).map((f) => f.dataset.id);
  const count = () => { document.getElementById("selection").textContent = `${selected().length} selected`; };

  grid.addEventListener("click", async (event) => {
    const figure = event.target.closest("figure.image");
    if (!figure || event.target.closest("a")) return;
    if (event.target.closest(".keep-toggle")) {
      const keep = !figure.classList.contains("kept");
      try {
        await post(`/jobs/${jobId}/images`, {action: keep ? "keep" : "unkeep", ids: [figure.dataset.id]});
        figure.classList.toggle("kept", keep);
        figure.querySelector(".keep-toggle").setAttribute("aria-pressed", String(keep));
      } catch (error) { notice(error.message, true); }
      return;
    }
    const all = figures();
    if (event.shiftKey && last) {
      const [a, b] = [all.indexOf(last), all.indexOf(figure)].sort((x, y) => x - y);
      all.slice(a, b + 1).forEach((f) => f.classList.add("selected"));
    } else {
      figure.classList.toggle("selected");
    }
    last = figure;
    count();
  });

  document.querySelectorAll("[data-select]").forEach((button) => button.addEventListener("click", () => {
    figures().forEach((f) => f.classList.toggle("selected", button.dataset.select === "all"));
    count();
  }));

  document.querySelectorAll("[data-action]").forEach((button) => button.addEventListener("click", async () => {
    const ids = selected();
    if (!ids.length) { notice("Select some images first (click; shift-click selects a range).", true); return; }
    const action = button.dataset.action;
    if (action === "delete" && !confirm(`Delete ${ids.length} image(s)?`)) return;
    try {
      const result = await post(`/jobs/${jobId}/images`, {action, ids});
      ids.forEach((id) => {
        const figure = grid.querySelector(`figure[data-id="${id}"]`);
        if (action === "delete") figure.remove();
        else {
          figure.classList.toggle("kept", action === "keep");
          figure.querySelector(".keep-toggle").setAttribute("aria-pressed", String(action === "keep"));
        }
        figure.classList.remove("selected");
      });
      notice(result.message);
      count();
    } catch (error) { notice(error.message, true); }
  }));

  document.getElementById("compare")?.addEventListener("click", () => {
    const ids = selected();
    if (ids.length !== 2) { notice("Select exactly two images to compare.", true); return; }
    location.href = `/compare?a=${encodeURIComponent(ids[0])}&b=${encodeURIComponent(ids[1])}`;
  });

  if (grid.dataset.live === "yes") {
    // Re-fetch the grid when the job changes, at most once a second however often it progresses.
    let waiting = null;
    let lastFetch = 0;
    const refresh = async () => {
      waiting = null;
      if (selected().length) return;  // never pull the grid from under a selection
      lastFetch = Date.now();
      const response = await fetch(`/jobs/${jobId}?fragment=grid`);
      if (response.ok) grid.innerHTML = await response.text();
    };
    const source = new EventSource(`/jobs/${jobId}/events`);
    source.addEventListener("changed", () => {
      if (!waiting) waiting = setTimeout(refresh, Math.max(0, 1000 - (Date.now() - lastFetch)));
    });
  }
}

// --- live tables (queue, workers) ----------------------------------------------------------------------------

function setupLiveTable(table) {
  const source = new EventSource(table.dataset.live);
  source.addEventListener(table.dataset.topic, (event) => {
    table.innerHTML = event.data;
    table.dataset.updated = String(Date.now());
    showTimes(table);
  });
  setInterval(() => showTimes(table), 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  showTimes(document);
  const grid = document.getElementById("grid");
  if (grid) setupJob(grid);
  document.querySelectorAll("table[data-live]").forEach(setupLiveTable);
  document.querySelectorAll("form[data-confirm]").forEach((form) => form.addEventListener("submit", (event) => {
    if (!confirm(form.dataset.confirm)) event.preventDefault();
  }));
});
