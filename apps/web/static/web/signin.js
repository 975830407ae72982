/** The sign-in page: `POST /api/v1/auth/login`, the response kept in sessionStorage. */
import { ApiError, api, loadSession, saveSession, showMessage } from "./app.js";

const message = document.getElementById("signin-message");
const form = document.getElementById("signin-form");

/** Where a user goes after signing in. */
function home(user) {
  return user.userType === "tenant" ? "/requests/" : "/board/";
}

const params = new URLSearchParams(location.search);
if (params.has("expired")) showMessage(message, "Your session has expired. Please sign in again.");
else if (params.has("revoked")) showMessage(message, "You were signed out (on another device or by an administrator). Please sign in again.");
else {
  const existing = loadSession();
  if (existing?.token) location.replace(home(existing.user));
}

form.addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  const email = form.email.value.trim();
  const password = form.password.value;
  if (!email || !password) {
    showMessage(message, "Enter your email and password.");
    return;
  }
  const button = document.getElementById("signin-submit");
  button.disabled = true;
  try {
    const session = await api("/auth/login", { method: "POST", body: { email, password }, token: "" });
    saveSession(session);
    location.assign(home(session.user));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showMessage(message, "Wrong email or password.");
    } else if (error instanceof ApiError && error.status === 429) {
      const wait = error.retryAfter ? `${error.retryAfter} seconds` : "a minute";
      showMessage(message, `Too many sign-in attempts. Wait ${wait} and try again.`);
    } else {
      showMessage(message, `Sign-in failed: ${error.message}`);
    }
    form.password.focus();
  } finally {
    button.disabled = false;
  }
});
