/**
 * Test certificates, made fresh for each run with node-forge: a CA, server
 * certificates it signs (for 127.0.0.1 and localhost, or another name), and
 * client certificates for mTLS.
 */

import { generateKeyPairSync, randomBytes } from "node:crypto";
import forge from "node-forge";

/** A PEM certificate and its PEM private key. */
export interface KeyPair {
  cert: string;
  key: string;
}

export interface Authority extends KeyPair {
  /** A certificate signed by this authority. */
  issue(options: IssueOptions): KeyPair;
}

export interface IssueOptions {
  commonName: string;
  /** DNS names and IP addresses the certificate is valid for (a server's). */
  dnsNames?: string[];
  ipAddresses?: string[];
  /** "server" (default) or "client" (mTLS). */
  usage?: "server" | "client";
}

function rsaKeys(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string } {
  // Node makes the key (fast); forge signs the certificates.
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
  });
  return {
    privateKey: forge.pki.privateKeyFromPem(privateKey),
    publicKey: forge.pki.publicKeyFromPem(publicKey),
    pem: privateKey,
  };
}

function certificate(
  commonName: string,
  publicKey: forge.pki.rsa.PublicKey,
  extensions: object[],
): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A positive serial: the high bit clear.
  cert.serialNumber = `01${randomBytes(15).toString("hex")}`;
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60 * 60 * 1000);
  cert.validity.notAfter = new Date(now + 24 * 60 * 60 * 1000);
  cert.setSubject([{ name: "commonName", value: commonName }]);
  cert.setExtensions(extensions);
  return cert;
}

/** A new self-signed CA named `commonName`. */
export function createAuthority(commonName = "Cairn Test CA"): Authority {
  const keys = rsaKeys();
  const ca = certificate(commonName, keys.publicKey, [
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  ca.setIssuer(ca.subject.attributes);
  ca.sign(keys.privateKey, forge.md.sha256.create());

  const issue = ({ commonName: name, dnsNames = [], ipAddresses = [], usage = "server" }: IssueOptions) => {
    const leafKeys = rsaKeys();
    const altNames = [
      ...dnsNames.map((value) => ({ type: 2, value })),
      ...ipAddresses.map((ip) => ({ type: 7, ip })),
    ];
    const leaf = certificate(name, leafKeys.publicKey, [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: usage === "server", clientAuth: usage === "client" },
      ...(altNames.length > 0 ? [{ name: "subjectAltName", altNames }] : []),
    ]);
    leaf.setIssuer(ca.subject.attributes);
    leaf.sign(keys.privateKey, forge.md.sha256.create());
    return { cert: forge.pki.certificateToPem(leaf), key: leafKeys.pem };
  };
  return { cert: forge.pki.certificateToPem(ca), key: keys.pem, issue };
}
