// What every page shares around its content: the sign-out button.
import { request } from "./api.js";

const signOut = document.getElementById("sign-out");
if (signOut) {
  signOut.addEventListener("click", async () => {
    const answer = await request("POST", "/auth/logout");
    location.assign(answer.next || "/auth/login"); // with single sign-on, the page offering both ways in
  });
}
