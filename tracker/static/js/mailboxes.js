// Mailbox and credential forms: preset server fields, and new credentials in a dialog.
(function () {
  'use strict';

  // With JS on, the server fields of a preset service hide (CSS: .js [data-preset]);
  // without JS every field stays visible and the server ignores them for presets.
  document.documentElement.classList.add('js');

  function dialog() { return document.getElementById('credential-dialog'); }

  function closeDialog() {
    var d = dialog();
    if (!d) return;
    if (d.open) d.close();
    var body = document.getElementById('credential-dialog-body');
    if (body) body.innerHTML = '';
  }

  // The credential form was loaded into the dialog: show it.
  document.addEventListener('htmx:afterSwap', function (event) {
    var target = event.detail && event.detail.target;
    var d = dialog();
    if (d && target && target.id === 'credential-dialog-body' && !d.open && target.children.length) {
      d.showModal();
      var first = target.querySelector('input:not([type=hidden])');
      if (first) first.focus();
    }
  });

  // The dialog saved new credentials (HX-Trigger): select them in the mailbox form.
  document.addEventListener('credential-created', function (event) {
    var detail = event.detail || {};
    var select = document.getElementById('credential');
    if (select && detail.id) {
      var option = select.querySelector('option[value="' + String(detail.id).replace(/"/g, '') + '"]');
      if (!option) {
        option = document.createElement('option');
        option.value = detail.id;
        option.textContent = detail.label || detail.id;
        select.appendChild(option);
      }
      select.value = String(detail.id);
      select.dispatchEvent(new Event('change', { bubbles: true }));
    }
    closeDialog();
  });

  document.addEventListener('click', function (event) {
    var button = event.target.closest && event.target.closest('[data-close-dialog]');
    if (button) closeDialog();
  });

  // Escape closes the dialog natively; forget its form as well.
  document.addEventListener('close', function (event) {
    if (event.target === dialog()) {
      var body = document.getElementById('credential-dialog-body');
      if (body) body.innerHTML = '';
    }
  }, true);
})();
