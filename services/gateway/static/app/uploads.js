// Sending a video straight to storage, with progress.
//
// Small files: `GET /video/upload/` gives a presigned POST policy; the file is POSTed
// to storage as a form (the policy's fields first, the file last). Large files
// (`MULTIPART_THRESHOLD` and up): a resumable multipart upload, `POST
// /video/upload/multipart`, each part PUT to its own presigned URL
// (`…/parts/{n}`), then `…/complete`. What was begun is remembered in localStorage by
// the file's name, size and date, so choosing the same file again after a closed tab
// or a lost connection sends only the parts storage does not hold yet
// (`GET /video/upload/multipart/{hash_id}` lists them).

import { ApiError, api, sendWithProgress } from "./api.js";

export const MULTIPART_THRESHOLD = 64 * 1024 * 1024;
const PARALLEL_PARTS = 3;
const PART_ATTEMPTS = 3;
const RESUME_KEY = "kino.resumableUploads";

const EXTENSION_TYPES = {
  mp4: "video/mp4",
  m4v: "video/mp4",
  mov: "video/quicktime",
  qt: "video/quicktime",
  webm: "video/webm",
  mkv: "video/x-matroska",
  avi: "video/x-msvideo",
  mpg: "video/mpeg",
  mpeg: "video/mpeg",
  ts: "video/mp2t",
  ogv: "video/ogg",
  "3gp": "video/3gpp",
};

/** The file's content type: what the browser says, else from its extension. */
export function contentTypeOf(file) {
  if (file.type) return file.type;
  const extension = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
  return EXTENSION_TYPES[extension] || "application/octet-stream";
}

function fingerprint(file) {
  return `${file.name}|${file.size}|${file.lastModified}`;
}

function resumable() {
  try {
    return JSON.parse(localStorage.getItem(RESUME_KEY) || "{}");
  } catch {
    return {};
  }
}

function remember(file, hashId) {
  const all = resumable();
  if (hashId) all[fingerprint(file)] = hashId;
  else delete all[fingerprint(file)];
  localStorage.setItem(RESUME_KEY, JSON.stringify(all));
}

/** The hash_id of an unfinished resumable upload of this very file, if any. */
export function unfinishedUpload(file) {
  return resumable()[fingerprint(file)] || null;
}

/**
 * Upload `file`; `details` (`title`, `description`, `is_private`) are saved before the
 * file goes to storage, so a private video is never listed publicly. `onProgress(sent,
 * total)`; `signal` cancels (a resumable upload stays resumable); files of
 * `multipartFrom` bytes and more go the resumable way. Resolves with the video's
 * hash_id once storage holds the file (processing then starts by itself).
 */
export async function uploadVideo(
  file,
  details,
  { onProgress, signal, multipartFrom = MULTIPART_THRESHOLD } = {},
) {
  const contentType = contentTypeOf(file);
  if (file.size >= multipartFrom) {
    const hashId = await uploadMultipart(file, contentType, details, { onProgress, signal });
    if (hashId) return hashId;
  }
  const instructions = await api("/video/upload/", {
    query: { file_content_type: contentType, file_name: file.name },
  });
  const hashId = String(instructions.signatures.key).replace(/^incoming\//, "");
  await saveDetails(hashId, details);
  const form = new FormData();
  for (const [name, value] of Object.entries(instructions.signatures)) form.append(name, value);
  form.append("file", file);
  await sendWithProgress("POST", instructions.url, form, { onProgress, signal });
  return hashId;
}

async function saveDetails(hashId, details) {
  if (details)
    await api(`/video/my/${encodeURIComponent(hashId)}`, { method: "PUT", json: details });
}

/** The resumable path; null when this Kino has no multipart API (the caller POSTs). */
async function uploadMultipart(file, contentType, details, { onProgress, signal }) {
  let state = null;
  const previous = unfinishedUpload(file);
  if (previous) {
    try {
      state = await api(`/video/upload/multipart/${encodeURIComponent(previous)}`);
    } catch {
      remember(file, null); // expired, completed or gone: start again
    }
  }
  if (!state) {
    try {
      state = await api("/video/upload/multipart", {
        method: "POST",
        json: { file_name: file.name, file_content_type: contentType, size: file.size },
      });
    } catch (error) {
      if (error.status === 404 || error.status === 405) return null;
      throw error;
    }
    state.uploaded_parts = [];
    remember(file, state.hash_id);
    await saveDetails(state.hash_id, details);
  }
  const hashId = state.hash_id;
  const partSize = state.part_size;
  const sizeOf = (number) => Math.min(partSize, file.size - (number - 1) * partSize);
  const sent = new Map();
  for (const part of state.uploaded_parts || []) {
    if (part.size === sizeOf(part.part_number)) sent.set(part.part_number, part.size);
  }
  const report = () =>
    onProgress?.(
      [...sent.values()].reduce((a, b) => a + b, 0),
      file.size,
    );
  report();
  const queue = [];
  for (let number = 1; number <= state.parts; number += 1)
    if (!sent.has(number)) queue.push(number);

  const sendPart = async (number) => {
    const start = (number - 1) * partSize;
    const blob = file.slice(start, start + sizeOf(number));
    for (let attempt = 1; ; attempt += 1) {
      try {
        const { url } = await api(
          `/video/upload/multipart/${encodeURIComponent(hashId)}/parts/${number}`,
        );
        await sendWithProgress("PUT", url, blob, {
          signal,
          onProgress: (loaded) => {
            sent.set(number, loaded);
            report();
          },
        });
        sent.set(number, blob.size);
        report();
        return;
      } catch (error) {
        if (
          signal?.aborted ||
          attempt >= PART_ATTEMPTS ||
          (error.status >= 400 && error.status < 500)
        )
          throw error;
      }
    }
  };
  const worker = async () => {
    while (queue.length) await sendPart(queue.shift());
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, queue.length) }, worker));
  await api(`/video/upload/multipart/${encodeURIComponent(hashId)}/complete`, { method: "POST" });
  remember(file, null);
  return hashId;
}

/** Give up a resumable upload of this file (storage drops its parts). */
export async function abandonUpload(file) {
  const hashId = unfinishedUpload(file);
  if (!hashId) return;
  remember(file, null);
  try {
    await api(`/video/upload/multipart/${encodeURIComponent(hashId)}`, { method: "DELETE" });
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
  }
}
