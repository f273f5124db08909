import { EmbeddedTransport } from '../../src/transport/embedded-transport.js';
import { transportContract } from '../helpers/transport-contract.js';

transportContract('embedded', async () => {
  const handlerErrors: Error[] = [];
  const t = new EmbeddedTransport({ onHandlerError: (e) => handlerErrors.push(e) });
  return { a: t, b: t, cleanup: () => t.close(), handlerErrors };
});
