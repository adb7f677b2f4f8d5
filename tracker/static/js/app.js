// Admin helpers that need no inline script (our CSP forbids it).
(function () {
  'use strict';

  function copyText(source) {
    var text = source.value !== undefined ? source.value : source.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http on a LAN address: the older selection-based copy still works there.
    source.select && source.select();
    var ok = document.execCommand && document.execCommand('copy');
    return ok ? Promise.resolve() : Promise.reject(new Error('copy failed'));
  }

  document.addEventListener('click', function (event) {
    var button = event.target.closest && event.target.closest('[data-copy]');
    if (!button) return;
    var source = document.getElementById(button.getAttribute('data-copy'));
    if (!source) return;
    var label = button.textContent;
    copyText(source).then(function () {
      button.textContent = button.getAttribute('data-copied') || label;
      setTimeout(function () { button.textContent = label; }, 2000);
    }, function () {
      source.select && source.select();
    });
  });
})();
