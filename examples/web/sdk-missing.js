// The notice the demo pages (ant, conference, raw, socketio) show when an SDK they load from
// /node_modules/ is not there: the page cannot work, and says what to run. One script the
// gateway serves with the pages at /sdk-missing.js, so the four pages say the same thing.
// Each page has <p id="sdk-missing" hidden> and calls showSdkMissing(what, path) when its SDK
// failed to load. (The gateway serves [web] node_modules_dir, the repo's node_modules/.)
function showSdkMissing(what, path) {
  const box = document.getElementById('sdk-missing');
  const code = (text) => { const c = document.createElement('code'); c.textContent = text; return c; };
  box.replaceChildren(what + ' did not load from ', code(path), '. This page needs the npm packages of the '
    + 'Switchboard repository: run ', code('npm ci'), ' in the repository, then reload this page. '
    + '(The gateway serves the repository\'s node_modules/, or the directory set in [web] '
    + 'node_modules_dir, at /node_modules/.)');
  box.hidden = false;
}
