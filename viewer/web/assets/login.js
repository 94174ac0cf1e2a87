// tsuitate web viewer: login page. The only thing kept in the browser is the language choice.
'use strict';
(function () {
  const KEY = 'tsuitate.lang';
  const page = document.documentElement.lang;
  const explicit = new URLSearchParams(location.search).get('lang');
  let saved = null;
  try { saved = localStorage.getItem(KEY); } catch (e) { /* storage off: fine */ }
  if (explicit === 'ja' || explicit === 'en') {
    try { localStorage.setItem(KEY, explicit); } catch (e) { /* ignore */ }
  } else if ((saved === 'ja' || saved === 'en') && saved !== page
             && !document.getElementById('notice')) {
    location.replace('/?lang=' + saved);
    return;
  }
  const form = document.getElementById('login');
  form.addEventListener('submit', function () {
    document.getElementById('submit').disabled = true;
  });
})();
