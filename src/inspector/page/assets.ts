export { INDEX_HTML, STATELY_BRIDGE_HTML } from './html.js';
export { APP_CSS } from './css.js';
export { APP_JS } from './app-js.js';
