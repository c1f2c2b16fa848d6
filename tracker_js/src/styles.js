// Popup and strip styles. Class names are prefixed so a site can restyle
// them (.attimo-pop, .attimo-modal, .attimo-bar, .attimo-slide_in,
// .attimo-cta, .attimo-coupon, .attimo-strip, .attimo-card …).
const Z = 'z-index:2147483000;'
export const CSS =
  '.attimo-back{position:fixed;inset:0;background:rgba(0,0,0,.45);display:flex;align-items:center;justify-content:center;' + Z + '}' +
  '.attimo-pop{box-sizing:border-box;position:relative;background:#fff;color:#222;font:15px/1.4 system-ui,sans-serif;padding:1.2em;box-shadow:0 4px 24px rgba(0,0,0,.25)}' +
  '.attimo-modal{width:26em;max-width:92vw;max-height:90vh;overflow:auto;border-radius:10px}' +
  '.attimo-bar{position:fixed;top:0;left:0;right:0;display:flex;flex-wrap:wrap;gap:.4em 1em;align-items:center;padding:.6em 3em .6em 1em;' + Z + '}' +
  '.attimo-slide_in{position:fixed;right:1em;bottom:1em;width:22em;max-width:92vw;border-radius:10px;animation:attimo-in .3s ease-out;' + Z + '}' +
  '@keyframes attimo-in{from{transform:translateY(120%)}}' +
  '@media (prefers-reduced-motion:reduce){.attimo-slide_in{animation:none}}' +
  '.attimo-pop h2{margin:0 1.5em .4em 0;font-size:1.2em}.attimo-pop p{margin:0 0 .8em}' +
  '.attimo-bar h2,.attimo-bar p{margin:0}.attimo-bar img{max-height:2.5em}' +
  '.attimo-pop img{display:block;max-width:100%;margin-bottom:.8em}' +
  '.attimo-close{position:absolute;top:.3em;right:.3em;border:0;background:none;color:inherit;font-size:1.5em;line-height:1;padding:.2em .45em;cursor:pointer}' +
  '.attimo-cta{display:inline-block;border:0;border-radius:6px;background:#222;color:#fff;padding:.5em 1em;font:inherit;text-decoration:none;cursor:pointer}' +
  '.attimo-coupon code{border:1px dashed;padding:.15em .5em;font-weight:700;user-select:all}' +
  '.attimo-strip{display:flex;gap:1em;overflow-x:auto}' +
  '.attimo-card{flex:0 0 10em;color:inherit;text-decoration:none;font:14px/1.3 system-ui,sans-serif}' +
  '.attimo-card img{display:block;width:100%;aspect-ratio:1;object-fit:cover;border-radius:6px;background:#eee}' +
  '.attimo-name,.attimo-price{display:block;margin-top:.3em}.attimo-price{font-weight:600}'
