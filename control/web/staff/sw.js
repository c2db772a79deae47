// The staff app's service worker: the app's own files (the shell) come from a cache, so the
// app opens without a network; data lives in IndexedDB and API calls go to the network as
// they are (never cached here). The server writes the version and the shell's URLs into this
// file (control/mobile/pages.py): a new release is a new worker with a new cache.

const VERSION = "__VERSION__";
const SHELL = "__SHELL__";
const CACHE = `staff-${VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("staff-") && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  const navigation = request.mode === "navigate" && url.pathname.startsWith("/staff/");
  if (!navigation && !SHELL.includes(url.pathname)) return; // the API and everything else
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const hit = await cache.match(navigation ? "/staff/" : url.pathname);
    return hit || fetch(request);
  })());
});
