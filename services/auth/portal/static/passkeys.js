// Passkeys on the portal: the sign-in button and "Add a passkey". Loaded as a file (the pages'
// CSP allows script-src 'self' and nothing inline); every request carries the page's CSRF token.
(function () {
  "use strict";

  function toBytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBytes(item.id), transports: item.transports };
    });
  }

  function creationOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBytes(json.user.id) });
    options.excludeCredentials = descriptors(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.allowCredentials = descriptors(json.allowCredentials);
    return options;
  }

  function credentialJSON(credential) {
    var response = credential.response;
    var out = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: { clientDataJSON: toText(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      out.response.attestationObject = toText(response.attestationObject);
      if (response.getTransports) out.response.transports = response.getTransports();
    } else {
      out.response.authenticatorData = toText(response.authenticatorData);
      out.response.signature = toText(response.signature);
      if (response.userHandle) out.response.userHandle = toText(response.userHandle);
    }
    if (credential.authenticatorAttachment) out.authenticatorAttachment = credential.authenticatorAttachment;
    return out;
  }

  function post(path, csrf, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      return response.json().then(
        function (data) {
          if (!response.ok) throw new Error(data.message || "The request failed.");
          return data;
        },
        function () {
          throw new Error("The server answered " + response.status + ".");
        }
      );
    });
  }

  function say(element, text) {
    element.textContent = text;
    element.hidden = !text;
  }

  function failure(error) {
    if (error && error.name === "NotAllowedError") return "The passkey request was cancelled or timed out.";
    if (error && error.name === "InvalidStateError") return "This passkey is registered already.";
    return (error && error.message) || "Something went wrong. Try again.";
  }

  function setUpSignIn(box) {
    var button = document.getElementById("passkey-button");
    var output = document.getElementById("passkey-error");
    box.hidden = false;
    button.addEventListener("click", function () {
      var csrf = box.getAttribute("data-csrf");
      button.disabled = true;
      say(output, "");
      post("/portal/passkeys/login/options", csrf)
        .then(function (json) {
          return navigator.credentials.get({ publicKey: requestOptions(json) });
        })
        .then(function (credential) {
          var body = { credential: credentialJSON(credential), rd: box.getAttribute("data-rd") || "" };
          return post("/portal/passkeys/login/verify", csrf, body);
        })
        .then(function (result) {
          window.location.assign(result.redirect);
        })
        .catch(function (error) {
          say(output, failure(error));
          button.disabled = false;
        });
    });
  }

  function setUpRegistration(form) {
    var button = document.getElementById("passkey-add-button");
    var output = document.getElementById("passkey-add-error");
    button.disabled = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var csrf = form.getAttribute("data-csrf");
      var name = document.getElementById("passkey-name").value;
      var passwordField = document.getElementById("passkey-password");
      var options = passwordField ? { password: passwordField.value } : undefined;
      button.disabled = true;
      say(output, "");
      post("/portal/passkeys/register/options", csrf, options)
        .then(function (json) {
          return navigator.credentials.create({ publicKey: creationOptions(json) });
        })
        .then(function (credential) {
          return post("/portal/passkeys/register/verify", csrf, { credential: credentialJSON(credential), name: name || null });
        })
        .then(function (result) {
          window.location.assign(result.redirect);
        })
        .catch(function (error) {
          say(output, failure(error));
          button.disabled = false;
        });
    });
  }

  function start() {
    if (!window.PublicKeyCredential || !navigator.credentials) return;
    var box = document.getElementById("passkey-signin");
    if (box) setUpSignIn(box);
    var form = document.getElementById("passkey-add");
    if (form) setUpRegistration(form);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
