// Form submissions as `Form Submitted`, only for forms the site marks with
// `data-attimo-form` (its value, if any, is the form's name). Sent: the
// form's id and name and its named fields — never a field of type password,
// hidden, file (nor buttons), a field marked `data-attimo-ignore`, a field
// whose name or autocomplete says pass(word), pwd, card / cc-…, cvc, cvv,
// csc, iban, ssn, secret or token, nor a value that looks like a card number
// (13–19 digits, spaces and dashes aside); unticked boxes are left out.
// Tested on "type name autocomplete".
const SKIP = /^(password|hidden|file|submit|button|reset|image) |pass|pwd|card|cc-|cvc|cvv|csc|iban|ssn|secret|token/i

export function watchForms(track) {
  addEventListener(
    'submit',
    (e) => {
      const f = e.target
      const name = f.dataset.attimoForm
      if (name == null) return
      const fields = {}
      for (const x of f.elements) {
        const v = String(x.value)
        if (!x.name || SKIP.test(x.type + ' ' + x.name + ' ' + x.autocomplete) || 'attimoIgnore' in x.dataset ||
          /^\d{13,19}$/.test(v.replace(/[ -]/g, '')) || /checkbox|radio/.test(x.type) && !x.checked) continue
        fields[x.name] = v
      }
      track('Form Submitted', { form_id: f.id || null, form_name: name || null, fields })
    },
    true
  )
}
