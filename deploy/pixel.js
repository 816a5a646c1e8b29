/*! pixeld tracker: one GET of the pixel per pageview (SPA navigations included) and per custom
 * event. No cookies, no storage, no fingerprinting; pixeld derives a daily anonymous id on the server
 * and keeps neither the IP address nor the user agent.
 *
 *   <script defer src="https://stats.example.com/pixel.js"
 *           data-endpoint="https://stats.example.com/pixel.gif"></script>
 *
 * data-endpoint defaults to pixel.gif beside this script. Custom events:
 *   pixeld('signup', {plan: 'pro'});   // e=signup&p={"plan":"pro"} (flat strings/numbers/booleans)
 * Query arguments sent: e (event), u (page URL), r (document referrer), w (screen width), p (props).
 */
(function () {
  'use strict';
  var script = document.currentScript;
  var endpoint = script && script.getAttribute('data-endpoint');
  if (!endpoint) {
    try {
      endpoint = new URL('pixel.gif', script ? script.src : location.href).href;
    } catch (e) {
      endpoint = '/pixel.gif';
    }
  }
  var lastURL = null;
  var referrer = document.referrer || '';

  function send(event, props) {
    if (!/^https?:$/.test(location.protocol)) return;
    var query = 'e=' + encodeURIComponent(event) +
      '&u=' + encodeURIComponent(location.href) +
      '&r=' + encodeURIComponent(referrer) +
      '&w=' + ((window.screen && screen.width) || 0);
    if (props) {
      try {
        query += '&p=' + encodeURIComponent(JSON.stringify(props));
      } catch (e) { /* unserialisable props: send the event without them */ }
    }
    var url = endpoint + (endpoint.indexOf('?') < 0 ? '?' : '&') + query;
    // A GET, as empty_gif answers only GET/HEAD; keepalive lets it finish while the page unloads.
    if (window.fetch) {
      fetch(url, { method: 'GET', mode: 'no-cors', credentials: 'omit', keepalive: true, cache: 'no-store' })
        .catch(function () {});
    } else {
      new Image().src = url;
    }
  }

  function pageview() {
    if (location.href === lastURL) return; // replaceState with the same URL, hash-only repeats
    if (lastURL !== null) referrer = lastURL; // SPA navigation: the previous page referred
    lastURL = location.href;
    send('pageview');
  }

  // Single-page apps: count history navigations.
  ['pushState', 'replaceState'].forEach(function (name) {
    var original = history[name];
    if (!original) return;
    history[name] = function () {
      var result = original.apply(this, arguments);
      pageview();
      return result;
    };
  });
  window.addEventListener('popstate', pageview);

  window.pixeld = function (event, props) {
    if (typeof event === 'string' && event) send(event, props);
  };

  if (document.visibilityState === 'prerender') {
    document.addEventListener('visibilitychange', function onVisible() {
      if (document.visibilityState !== 'visible') return;
      document.removeEventListener('visibilitychange', onVisible);
      pageview();
    });
  } else {
    pageview();
  }
})();
