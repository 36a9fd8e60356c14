#!/usr/bin/env node
// Links the demo's image, demo/images/sample.jpg, to a photo of Debian's labelme-examples
// package. The photo is not copied into the project: the package's copyright file puts its files
// under the GPL, so the demo only points at the installed copy.
//
// Usage: node demo/link-image.mjs [IMAGE]   (prints the path of the link)

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_IMAGE = '/usr/share/doc/labelme-examples/examples/bbox_detection/data_annotated/2011_000025.jpg';
export const LINK = path.join(path.dirname(fileURLToPath(import.meta.url)), 'images', 'sample.jpg');

/**
 * Makes LINK point at image, replacing an older link in one step, so that concurrent callers
 * never see it missing.
 * @returns {string} the path of the link.
 * @throws {Error} when image does not exist.
 */
export function linkImage(image = DEFAULT_IMAGE) {
  if (!fs.existsSync(image)) {
    throw new Error(`${image} not found: install Debian's labelme-examples (scripts/setup.sh does) or name another image`);
  }
  fs.mkdirSync(path.dirname(LINK), { recursive: true });
  const temporary = `${LINK}.${process.pid}.tmp`;
  fs.rmSync(temporary, { force: true });
  fs.symlinkSync(image, temporary);
  fs.renameSync(temporary, LINK);
  return LINK;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    console.log(linkImage(process.argv[2]));
  } catch (err) {
    console.error(`link-image: ${err.message}`);
    process.exit(1);
  }
}
