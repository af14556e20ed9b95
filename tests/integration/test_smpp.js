// tests/integration/test_smpp.js: an independent SMSC for the SMS adapter,
// built on node's `smpp` package (farhadi/node-smpp) in server mode.
//
//   node test_smpp.js PORT_FILE OUT_FILE EXPECTED_TEXT [KEY.pem CERT.pem]
//
// With a key and certificate the server is node-smpp's secure server
// (SMPP over TLS, node's tls module); `tls` in OUT_FILE says which ran.
// Accepts one bind_transceiver, answers each submit_sm with a decimal
// message id, then sends a deliver_sm receipt whose id is the same number
// in upper-case hex (TLVs and Appendix B text), so the adapter must
// normalize. Writes what it saw to OUT_FILE as JSON after every PDU:
// parts, whether every part had data_coding 8 and a well-formed
// 05 00 03 ref total seq UDH, and whether the parts reassemble into
// EXPECTED_TEXT.
'use strict';
const fs = require('fs');
const smpp = require('smpp');

const [portFile, outFile, expected, keyFile, certFile] = process.argv.slice(2);
const secure = Boolean(keyFile && certFile);
const seen = {parts: 0, all_dc8: true, udh_ok: true, text_ok: false, unbound: false, bound: false,
	tls: false};
const pieces = [];
let total = 0, nextId = 1000000;

function save() {
	fs.writeFileSync(outFile + '.tmp', JSON.stringify(seen));
	fs.renameSync(outFile + '.tmp', outFile);
}

function checkPart(pdu) {
	seen.parts++;
	if (pdu.data_coding !== 8) seen.all_dc8 = false;
	const sm = pdu.short_message;
	const udh = sm && sm.udh && sm.udh[0];
	// node-smpp hands each UDH information element as [iei, len, data...]
	if (!(pdu.esm_class & 0x40) || !udh || udh.length !== 5 || udh[0] !== 0 || udh[1] !== 3 ||
	    udh[4] < 1 || udh[4] > udh[3]) {
		seen.udh_ok = false;
		return;
	}
	total = udh[3];
	pieces[udh[4] - 1] = sm.message;
	if (pieces.filter((p) => p !== undefined).length === total)
		seen.text_ok = pieces.join('') === expected;
}

const options = secure ? {key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile)} : {};
const server = smpp.createServer(options, (session) => {
	session.on('bind_transceiver', (pdu) => {
		seen.bound = true;
		seen.tls = Boolean(session.socket.encrypted);
		session.send(pdu.response());
		save();
	});
	session.on('enquire_link', (pdu) => session.send(pdu.response()));
	session.on('unbind', (pdu) => {
		seen.unbound = true;
		save();
		session.send(pdu.response());
		session.close();
	});
	session.on('submit_sm', (pdu) => {
		const id = nextId++;
		checkPart(pdu);
		save();
		session.send(pdu.response({message_id: String(id)}));
		setTimeout(() => {
			const hex = id.toString(16).toUpperCase();
			session.deliver_sm({
				source_addr: pdu.destination_addr,
				destination_addr: pdu.source_addr,
				esm_class: 0x04,
				short_message: `id:${hex} sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:`,
				receipted_message_id: hex,
				message_state: 2,
			});
		}, 20);
	});
	session.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => {
	fs.writeFileSync(portFile, String(server.address().port) + '\n');
});
process.on('SIGTERM', () => { save(); process.exit(0); });
