// The mlflow client prints links into MLflow's own UI ("View run at http://host/#/experiments/1/runs/<id>").
// Those arrive here, on /ui/ (the server sends / there and the browser keeps the #fragment):
// send them on to the same thing in labdeck's UI.

const ROUTES = [
  [/^#\/experiments\/[^/]+\/runs\/([0-9a-f]+)/, (m) => `/ui/runs/${m[1]}`],
  [/^#\/compare-runs\?runs=([^&]+)/, (m) => `/ui/compare?runs=${JSON.parse(decodeURIComponent(m[1])).join(",")}`],
  [/^#\/experiments\/([^/?]+)/, (m) => `/ui/experiments/${m[1]}`],
  [/^#\/models\/([^/?]+)/, (m) => `/ui/models/${m[1]}`],
];

function followMlflowLink(hash) {
  for (const [pattern, target] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      try {
        return target(match);
      } catch {
        return null; // a malformed link: stay on the home page
      }
    }
  }
  return null;
}

const target = followMlflowLink(location.hash);
if (target) location.replace(target);
