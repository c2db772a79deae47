// GTIN barcodes (EAN-8, UPC-A, EAN-13, GTIN-14) and their GS1 mod-10 check digit, as the
// server checks them (control/mobile/gtin.py): typos are caught before anything is queued.

export function checkDigit(body) {
  let sum = 0;
  [...body].reverse().forEach((d, i) => {
    sum += Number(d) * (i % 2 === 0 ? 3 : 1);
  });
  return (10 - (sum % 10)) % 10;
}

export function isGtin(code) {
  return /^(\d{8}|\d{12,14})$/.test(code) && checkDigit(code.slice(0, -1)) === Number(code.at(-1));
}

// The same product printed by another symbology has the same 14-digit form.
export function gtin14(code) {
  return code.padStart(14, "0");
}
