// Whether this browser may be tracked at all (before any consent question):
// an opt-out cookie, Do Not Track / Global Privacy Control when the site
// says to respect them, and automated browsers unless the site allows them.
import { getCookie } from './storage.js'

export const OPT_OUT = 'attimo_optout'

// Bots that run scripts (one that does not never loads the tracker): search
// engines' renderers and monitors (Googlebot/, bingbot/, pingbot/, Slackbot-…, not the Cubot
// phone), crawlers, spiders, monitoring and headless browsers.
const BOTS = /bot[/;-]|crawl|spider|headless|lighthouse/i

// A boolean attribute: present (`data-x`, `data-x="true"`) and not "false".
export const flag = (v) => v != null && v !== 'false'

export function blocked(cfg) {
  const n = navigator
  if (getCookie(OPT_OUT)) return 'opt-out'
  if (flag(cfg.respectDnt) && (n.doNotTrack === '1' || n.globalPrivacyControl))
    return 'dnt'
  if (!flag(cfg.allowBots) && (n.webdriver || BOTS.test(n.userAgent))) return 'bot'
  return ''
}
