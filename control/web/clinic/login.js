import { api, setupLanguage, showError, t } from "./clinic.js";

// Where a signed-in account lands: providers on the provider dashboard, requesters on theirs.
export function homeOf(staff) {
  if (staff.groups.includes("provide")) return "/clinic/provider";
  if (staff.groups.includes("request")) return "/clinic/requester";
  return "/clinic/admin";
}

const form = document.getElementById("login");
const error = document.getElementById("error");
form.dedicated.addEventListener("change", () => {
  document.getElementById("station-row").hidden = !form.dedicated.checked;
});

await setupLanguage();
api("GET", "/me").then((me) => { location.href = homeOf(me.staff); }, () => {});

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  error.hidden = true;
  const body = { username: form.username.value, password: form.password.value };
  if (form.dedicated.checked) body.station = form.station.value || t("login.default_station");
  try {
    const out = await api("POST", "/login", body);
    location.href = homeOf(out.staff);
  } catch (err) {
    showError(error, err);
  }
});
