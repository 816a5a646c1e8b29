/*! pixeld tracker: one GET of the pixel per pageview (a page is a path: SPA navigations and
 * back/forward-cache returns count, anchors and query rewrites do not) and per custom event. No cookies, no storage, no fingerprinting; pixeld derives a daily anonymous id on the server
 * and keeps neither the IP address nor the user agent.
 *
 *   <script defer src="/pixel.js"></script>
 *
 * with /pixel.js and /pixel.gif in your site's nginx (deploy/nginx-site.conf). From another host,
 * give that host's server block the same two locations (not the dashboard's: pixeld serve has no
 * pixel) and write its URL: src="https://pixel.example.net/pixel.js"; data-endpoint="URL" sends
 * the hits elsewhere (it defaults to pixel.gif beside this script). Custom events:
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
  var lastPath = null;
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

  // A pageview per page, as Plausible counts them: a new path. Anchors (#section), a search box
  // that rewrites the query, a router that tidies the URL are the same page. `again`: a page shown
  // again from the back/forward cache.
  function pageview(again) {
    if (!again && location.pathname === lastPath) return;
    if (lastURL !== null) referrer = lastURL; // SPA navigation: the previous page referred
    lastURL = location.href;
    lastPath = location.pathname;
    send('pageview');
  }

  // Single-page apps: pushState and back/forward are navigations; replaceState rewrites the
  // current entry, which is no new page.
  var pushState = history.pushState;
  if (pushState) {
    history.pushState = function () {
      var result = pushState.apply(this, arguments);
      pageview();
      return result;
    };
  }
  window.addEventListener('popstate', function () { pageview(); });
  // A page restored from the back/forward cache runs no script again, yet it is viewed again.
  window.addEventListener('pageshow', function (event) { if (event.persisted) pageview(true); });

  window.pixeld = function (event, props) {
    if (typeof event === 'string' && event) send(event, props);
  };

  // A prerendered page (Chrome's speculation rules, the address bar) is counted once it is shown,
  // and not at all if it never is.
  if (document.prerendering) {
    document.addEventListener('prerenderingchange', function () { pageview(); }, { once: true });
  } else if (document.visibilityState === 'prerender') {
    document.addEventListener('visibilitychange', function onVisible() {
      if (document.visibilityState !== 'visible') return;
      document.removeEventListener('visibilitychange', onVisible);
      pageview();
    });
  } else {
    pageview();
  }
})();
