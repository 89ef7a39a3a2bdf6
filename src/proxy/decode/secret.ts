/** Secret (SDS) → SecretModel. */
import type { DataSourceModel, DecodeResult, SecretModel } from '../model.js';
import { Errors, Reader, describe, isObj, tlsCertificate, validationContext } from './util.js';

export function decodeSecret(obj: unknown): DecodeResult<SecretModel> {
  if (!isObj(obj)) return { errors: [`secret: expected an object, got ${describe(obj)}`] };
  const name = typeof obj['name'] === 'string' ? obj['name'] : '';
  if (!name) return { errors: ['secret without a name'] };
  const errs = new Errors(`secret ${JSON.stringify(name)}`);
  const r = new Reader(obj, '', errs);
  const which = r.oneof(['tls_certificate', 'validation_context', 'session_ticket_keys', 'generic_secret']);
  let model: SecretModel | undefined;
  if (which === 'tls_certificate') {
    const t = r.obj_('tls_certificate')!;
    const certificate = tlsCertificate(t);
    if (certificate) {
      pem(certificate.certificateChain, t.p('certificate_chain'), 'CERTIFICATE', errs);
      pem(certificate.privateKey, t.p('private_key'), 'PRIVATE KEY', errs);
      model = { kind: 'tls-certificate', name, certificate };
    }
  } else if (which === 'validation_context') {
    const v = r.obj_('validation_context')!;
    const validation = validationContext(v, true);
    if (validation.trustedCa) pem(validation.trustedCa, v.p('trusted_ca'), 'CERTIFICATE', errs);
    model = { kind: 'validation-context', name, validation };
  } else if (which === undefined) {
    errs.add('', 'secret needs one of tls_certificate, validation_context');
  } else {
    errs.add(which, 'is not supported by isle proxy');
  }
  return errs.any || !model ? { errors: errs.list } : { ok: model };
}

/**
 * Only the PEM armour is checked: parsing belongs to the TLS layer, which must fail the
 * handshake (not the config) on a bad certificate, as Envoy does for files that change later.
 */
function pem(ds: DataSourceModel, path: string, label: string, errs: Errors): void {
  if (ds.kind !== 'inline') return;
  if (!ds.data.includes('-----BEGIN ') || !ds.data.includes(label)) {
    errs.add(path, `expected PEM data containing "${label}"`);
  }
}
