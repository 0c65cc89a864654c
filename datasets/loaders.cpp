// An experiment's loaders.
#include "datasets/loaders.hpp"

namespace hubel::datasets {

Loaders::Loaders(const Splits& s, const TrainOptions& t, int rank, int world, comm::Communicator* comm)
    : heldout_name(s.heldout_name) {
  LoaderOptions o{t.batch, rank, world, t.shuffle, s.drop_last, true, t.seed, s.prefetch, s.timeout};
  o.decode_threads = s.decode_threads;
  o.comm = comm;
  // An exact run (or one that may be) puts each rank's rows at the chunks' places, also in
  // a final smaller batch (framework/chunks.hpp).
  if (t.exact != TrainOptions::Exact::off && t.batch % world == 0) o.rows_per_rank = t.batch / world;
  LoaderOptions eval = o;
  o.shuffle_buffer = s.shuffle_buffer;
  train = std::make_unique<Loader>(*s.train, s.transform.get(), o);
  eval.shuffle = eval.drop_last = eval.augment = false;
  if (s.heldout) heldout = std::make_unique<Loader>(*s.heldout, s.transform.get(), eval);
  if (s.test && s.heldout_name != "test") test = std::make_unique<Loader>(*s.test, s.transform.get(), eval);
}

}  // namespace hubel::datasets
