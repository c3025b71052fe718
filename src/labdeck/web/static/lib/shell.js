// What every page shares around its content: the sign-out button.
import { request } from "./api.js";

const signOut = document.getElementById("sign-out");
if (signOut) {
  signOut.addEventListener("click", async () => {
    await request("POST", "/auth/logout");
    location.assign("/auth/login");
  });
}
