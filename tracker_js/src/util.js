// Small helpers shared by the tracker's modules (one copy each in the bundle).

// Now, as the wire's timestamps are written.
export const iso = () => new Date().toISOString()

export const warn = (...a) => console.warn('attimo:', ...a)
