// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

/// @title FLCoordinator
/// @notice Coordinates capacity-aware federated ensemble learning: hospitals register with a
/// signed Proof of Capacity, submit one model update per round (model hash plus self-reported
/// confidence and expected calibration error), and the owner records the hash of each round's
/// weighted ensemble prediction. Ensemble weights are computed on-chain in fixed point.
/// @dev Storage layout (every operation touches a constant number of slots):
/// - slot 0: `Ownable._owner`; slot 1: `Ownable2Step._pendingOwner` (160 bits) packed with the
///   round state (`_currentRound`, `_hospitalCount`, `_roundSubmitters`, `_roundClosed`) and a
///   deployment marker.
/// - one `Hospital` slot per hospital (registration data and its latest metrics), plus its
///   benchmark hash and name, written once at registration.
/// - per round and hospital: the model hash (one slot) and a 66-bit "lane" holding confidence,
///   ECE, the participation snapshot and the timestamp. Lanes are packed three to a slot by
///   registration index (`index / 3` picks the slot, `index % 3` the lane), so only the first of
///   three hospitals to submit in a round pays for a fresh slot.
/// - per round: the prediction hash (one slot) and a header stored in the top 58 bits of the
///   round's lane slot 0 (ensemble timestamp and the round's final submitter count).
contract FLCoordinator is Ownable2Step {
    /// @notice Hardware tier of a hospital, established by its Proof of Capacity.
    enum CapacityClass {
        Weak,
        Medium,
        Strong
    }

    /// @notice Model family a tier must train.
    enum ModelType {
        Light,
        Medium,
        Heavy
    }

    /// @notice Fixed-point scale of confidence, ECE, capacity multipliers and weights.
    uint256 public constant SCALE = 10_000;
    /// @notice Participation bonus per round taken part in.
    uint256 public constant BONUS_PER_ROUND = 500;
    /// @notice Upper bound of the participation bonus.
    uint256 public constant MAX_BONUS = 2_500;
    /// @notice Upper bound of a weight.
    uint256 public constant MAX_WEIGHT = 15_000;
    /// @notice Largest number of hospitals a deployment accepts (the lane header's 24-bit count).
    uint256 public constant MAX_HOSPITALS = (1 << 24) - 1;

    uint256 private constant _CAP_MUL_WEAK = 8_000;
    uint256 private constant _CAP_MUL_MEDIUM = 10_000;
    uint256 private constant _CAP_MUL_STRONG = 12_000;

    // Lane layout (66 bits, three lanes per slot at bit offsets 0, 66 and 132):
    // [0, 32) submission timestamp, [32, 46) confidence, [46, 60) ece,
    // [60, 66) rounds participated as of the round, saturated at 63.
    uint256 private constant _LANE_BITS = 66;
    uint256 private constant _LANES_PER_SLOT = 3;
    uint256 private constant _LANE_MASK = (1 << 66) - 1;
    uint256 private constant _CONF_SHIFT = 32;
    uint256 private constant _ECE_SHIFT = 46;
    uint256 private constant _ROUNDS_SHIFT = 60;
    uint256 private constant _METRIC_MASK = (1 << 14) - 1;
    uint256 private constant _ROUNDS_MASK = (1 << 6) - 1;
    uint256 private constant _MAX_ROUNDS_SNAPSHOT = 63;
    // Round header in the top bits of lane slot 0: [198, 230) ensemble timestamp,
    // [230, 254) submitter count.
    uint256 private constant _HEADER_TS_SHIFT = 198;
    uint256 private constant _HEADER_COUNT_SHIFT = 230;
    uint256 private constant _HEADER_MASK = ((1 << 58) - 1) << 198;

    // Bit offsets of the round state packed with `Ownable2Step._pendingOwner` in slot 1.
    uint256 private constant _S_ROUND_SHIFT = 160;
    uint256 private constant _S_SUBMITTERS_SHIFT = 216;
    uint256 private constant _S_CLOSED_SHIFT = 240;
    // Bit offsets of the `Hospital` fields inside its slot (as laid out by the compiler).
    uint256 private constant _H_CAPACITY_SHIFT = 24;
    uint256 private constant _H_REGISTERED_SHIFT = 32;
    uint256 private constant _H_LAST_ROUND_SHIFT = 40;
    uint256 private constant _H_ROUNDS_SHIFT = 72;
    uint256 private constant _H_CONF_SHIFT = 104;
    uint256 private constant _H_ECE_SHIFT = 120;

    /// @dev One storage slot per hospital: registration data and its latest submission.
    struct Hospital {
        uint24 index;
        CapacityClass capacity;
        bool registered;
        uint32 lastRound;
        uint32 roundsParticipated;
        uint16 confidence;
        uint16 ece;
    }

    /// @dev A hospital's slot followed by the data written once at registration.
    struct HospitalRecord {
        Hospital core;
        bytes32 pocBenchmarkHash;
        string name;
    }

    // Packed with Ownable2Step._pendingOwner in slot 1.
    uint32 private _currentRound;
    uint24 private _hospitalCount;
    uint24 private _roundSubmitters;
    bool private _roundClosed;
    // Set at deployment and never cleared: it keeps slot 1 non-zero while no ownership transfer
    // is pending, so the first registration pays for an update of the slot, not a fresh write.
    bool private _deployed;

    mapping(address hospital => HospitalRecord) private _hospitals;
    mapping(uint256 submissionKey => bytes32) private _modelHashes;
    mapping(uint256 laneKey => uint256) private _lanes;
    mapping(uint256 round => bytes32) private _predictionHashes;

    /// @notice A hospital was registered with a verified Proof of Capacity.
    event HospitalRegistered(
        address indexed hospital, string name, CapacityClass capacityClass, bytes32 pocBenchmarkHash
    );
    /// @notice A new round was opened.
    event RoundStarted(uint256 indexed round);
    /// @notice A hospital's update for a round was accepted.
    event UpdateSubmitted(
        uint256 indexed round,
        address indexed hospital,
        bytes32 modelHash,
        uint256 confidence,
        uint256 ece,
        ModelType modelType
    );
    /// @notice The hash of a round's ensemble prediction was recorded; the round is closed.
    event EnsemblePredictionRecorded(uint256 indexed round, bytes32 predictionHash, uint256 participantCount);

    /// @notice The hospital address is the zero address.
    error FLCoordinator__ZeroAddress();
    /// @notice The hospital is already registered.
    error FLCoordinator__AlreadyRegistered(address hospital);
    /// @notice The Proof-of-Capacity signature does not recover to the hospital (or is malformed
    /// or malleable); `recovered` is the zero address when the signature could not be parsed.
    error FLCoordinator__InvalidSignature(address hospital, address recovered);
    /// @notice The deployment already holds `MAX_HOSPITALS` hospitals.
    error FLCoordinator__TooManyHospitals();
    /// @notice A round cannot start before any hospital is registered.
    error FLCoordinator__NoHospitals();
    /// @notice The address is not a registered hospital.
    error FLCoordinator__NotRegistered(address account);
    /// @notice No round has been started yet.
    error FLCoordinator__NoActiveRound();
    /// @notice The round's ensemble was recorded; it accepts no more submissions.
    error FLCoordinator__RoundClosed(uint256 round);
    /// @notice The hospital already submitted an update in this round.
    error FLCoordinator__AlreadySubmitted(uint256 round, address hospital);
    /// @notice Confidence above `SCALE`.
    error FLCoordinator__ConfidenceOutOfRange(uint256 confidence);
    /// @notice ECE above `SCALE`.
    error FLCoordinator__EceOutOfRange(uint256 ece);
    /// @notice The submitted model type is not the one assigned to the hospital's tier.
    error FLCoordinator__WrongModelType(ModelType expected, ModelType provided);
    /// @notice The round's ensemble prediction was already recorded.
    error FLCoordinator__EnsembleAlreadyRecorded(uint256 round);
    /// @notice An ensemble needs at least one participant.
    error FLCoordinator__ZeroParticipants();
    /// @notice The claimed participant count differs from the round's actual submissions.
    error FLCoordinator__ParticipantCountMismatch(uint256 round, uint256 claimed, uint256 actual);
    /// @notice The hospital submitted nothing in that round.
    error FLCoordinator__NoSubmission(uint256 round, address hospital);

    /// @notice Deploys the coordinator; the deployer becomes the owner. Ownership moves in two
    /// steps (`transferOwnership`, then `acceptOwnership` by the new owner).
    constructor() Ownable(msg.sender) {
        _deployed = true;
    }

    /// @notice Registers a hospital after verifying its Proof-of-Capacity signature.
    /// @dev The hospital signs (EIP-191) `keccak256(abi.encode(address(this), block.chainid,
    /// hospital, keccak256(bytes(name)), uint8(capacity), benchmarkHash))`, so a signature is bound
    /// to this deployment, this chain, the hospital, the name it is listed under, its tier and its
    /// benchmark: the owner cannot register it under a name or tier it did not sign. Malleable
    /// (high-s) signatures are rejected. Owner only.
    /// @param hospital The hospital's account (it will send its own submissions).
    /// @param name Human-readable hospital name.
    /// @param capacity The tier established by the Proof of Capacity.
    /// @param benchmarkHash SHA-256 of the benchmark result.
    /// @param signature 65-byte r || s || v signature of the hospital over the PoC statement.
    function registerHospital(
        address hospital,
        string calldata name,
        CapacityClass capacity,
        bytes32 benchmarkHash,
        bytes calldata signature
    ) external onlyOwner {
        if (hospital == address(0)) revert FLCoordinator__ZeroAddress();
        HospitalRecord storage record = _hospitals[hospital];
        if (record.core.registered) revert FLCoordinator__AlreadyRegistered(hospital);
        bytes32 digest = MessageHashUtils.toEthSignedMessageHash(
            keccak256(
                abi.encode(
                    address(this), block.chainid, hospital, keccak256(bytes(name)), uint8(capacity), benchmarkHash
                )
            )
        );
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err != ECDSA.RecoverError.NoError || recovered != hospital) {
            revert FLCoordinator__InvalidSignature(hospital, recovered);
        }
        uint256 count = _hospitalCount;
        if (count >= MAX_HOSPITALS) revert FLCoordinator__TooManyHospitals();

        record.core = Hospital({
            index: uint24(count),
            capacity: capacity,
            registered: true,
            lastRound: 0,
            roundsParticipated: 0,
            confidence: 0,
            ece: 0
        });
        record.pocBenchmarkHash = benchmarkHash;
        record.name = name;
        // count < MAX_HOSPITALS (checked above), so count + 1 fits in 24 bits.
        unchecked {
            _hospitalCount = uint24(count + 1);
        }
        emit HospitalRegistered(hospital, name, capacity, benchmarkHash);
    }

    /// @notice Opens the next round. Owner only; needs at least one registered hospital.
    /// @dev If the previous round was never closed by an ensemble record, its submitter count is
    /// archived into its round header so `getRoundSubmitterCount` keeps answering for it.
    function startNewRound() external onlyOwner {
        if (_hospitalCount == 0) revert FLCoordinator__NoHospitals();
        uint32 previous = _currentRound;
        uint256 submitters = _roundSubmitters;
        if (submitters != 0 && !_roundClosed) {
            _writeHeader(previous, 0, submitters);
        }
        uint32 round = previous + 1; // checked: reverts after 2**32 - 1 rounds
        _currentRound = round;
        _roundSubmitters = 0;
        _roundClosed = false;
        emit RoundStarted(round);
    }

    /// @notice Submits the sender's model update for the current round.
    /// @dev Registered hospitals only (msg.sender), once per round, while the round is open.
    /// @param modelHash Hash of the trained model.
    /// @param confidence Mean max-softmax on the hospital's validation data, fixed point (0..SCALE).
    /// @param ece Expected calibration error, fixed point (0..SCALE).
    /// @param modelType Model family trained; must be the one assigned to the hospital's tier.
    function submitUpdate(bytes32 modelHash, uint256 confidence, uint256 ece, ModelType modelType) external {
        // The hot path reads and writes the two packed words it needs directly (one load and one
        // store each); the bit offsets are the compiler's layout of slot 1 and of `Hospital`.
        HospitalRecord storage record = _hospitals[msg.sender];
        uint256 hospital;
        uint256 state;
        assembly ("memory-safe") {
            hospital := sload(record.slot)
            state := sload(_currentRound.slot)
        }
        if ((hospital >> _H_REGISTERED_SHIFT) & 0xff == 0) revert FLCoordinator__NotRegistered(msg.sender);
        uint256 round = (state >> _S_ROUND_SHIFT) & 0xffffffff;
        if (round == 0) revert FLCoordinator__NoActiveRound();
        if ((state >> _S_CLOSED_SHIFT) & 0xff != 0) revert FLCoordinator__RoundClosed(round);
        if (confidence > SCALE) revert FLCoordinator__ConfidenceOutOfRange(confidence);
        if (ece > SCALE) revert FLCoordinator__EceOutOfRange(ece);
        ModelType expected = ModelType((hospital >> _H_CAPACITY_SHIFT) & 0xff);
        if (modelType != expected) revert FLCoordinator__WrongModelType(expected, modelType);
        if ((hospital >> _H_LAST_ROUND_SHIFT) & 0xffffffff == round) {
            revert FLCoordinator__AlreadySubmitted(round, msg.sender);
        }

        uint256 rounds;
        uint256 index = hospital & 0xffffff;
        // roundsParticipated < round <= 2**32 - 1 (one submission per round) and the submitter
        // count stays below the hospital count (< 2**24), so neither addition overflows its field.
        unchecked {
            rounds = ((hospital >> _H_ROUNDS_SHIFT) & 0xffffffff) + 1;
            state += 1 << _S_SUBMITTERS_SHIFT;
        }
        // Keep index, capacity and registered (the low 40 bits); replace lastRound,
        // roundsParticipated, confidence and ece.
        hospital = (hospital & 0xffffffffff) | (round << _H_LAST_ROUND_SHIFT) | (rounds << _H_ROUNDS_SHIFT)
            | (confidence << _H_CONF_SHIFT) | (ece << _H_ECE_SHIFT);
        assembly ("memory-safe") {
            sstore(record.slot, hospital)
            sstore(_currentRound.slot, state)
        }
        _modelHashes[_submissionKey(round, msg.sender)] = modelHash;

        uint256 snapshot = rounds < _MAX_ROUNDS_SNAPSHOT ? rounds : _MAX_ROUNDS_SNAPSHOT;
        uint256 lane = (block.timestamp & 0xffffffff) | (confidence << _CONF_SHIFT) | (ece << _ECE_SHIFT)
            | (snapshot << _ROUNDS_SHIFT);
        _lanes[_laneKey(round, index)] |= lane << _laneOffset(index);
        emit UpdateSubmitted(round, msg.sender, modelHash, confidence, ece, modelType);
    }

    /// @notice Records the hash of the current round's ensemble prediction and closes the round.
    /// @dev Owner only; `participantCount` must equal the round's actual number of submissions.
    /// @param predictionHash Hash of the ensemble's predictions.
    /// @param participantCount Number of hospitals whose updates formed the ensemble.
    function recordEnsemblePrediction(bytes32 predictionHash, uint256 participantCount) external onlyOwner {
        uint256 round = _currentRound;
        if (round == 0) revert FLCoordinator__NoActiveRound();
        if (_roundClosed) revert FLCoordinator__EnsembleAlreadyRecorded(round);
        if (participantCount == 0) revert FLCoordinator__ZeroParticipants();
        uint256 actual = _roundSubmitters;
        if (participantCount != actual) {
            revert FLCoordinator__ParticipantCountMismatch(round, participantCount, actual);
        }
        _roundClosed = true;
        _predictionHashes[round] = predictionHash;
        _writeHeader(round, block.timestamp, actual);
        emit EnsemblePredictionRecorded(round, predictionHash, participantCount);
    }

    /// @notice The weight formula itself, for any tier and metrics.
    /// @dev `min(floor(capMul * confidence * (SCALE - ece) / SCALE^2) + min(500 * rounds, 2500), 15000)`
    /// with capMul 8000 / 10000 / 12000 for Weak / Medium / Strong.
    /// @param capacity The tier.
    /// @param confidence Fixed-point confidence (0..SCALE).
    /// @param ece Fixed-point ECE (0..SCALE).
    /// @param roundsParticipated Rounds taken part in.
    /// @return The weight in fixed point (0..MAX_WEIGHT).
    function calculateWeightPure(CapacityClass capacity, uint256 confidence, uint256 ece, uint256 roundsParticipated)
        public
        pure
        returns (uint256)
    {
        if (confidence > SCALE) revert FLCoordinator__ConfidenceOutOfRange(confidence);
        if (ece > SCALE) revert FLCoordinator__EceOutOfRange(ece);
        uint256 capMul = capacity == CapacityClass.Strong
            ? _CAP_MUL_STRONG
            : (capacity == CapacityClass.Medium ? _CAP_MUL_MEDIUM : _CAP_MUL_WEAK);
        uint256 bonus = roundsParticipated >= MAX_BONUS / BONUS_PER_ROUND
            ? MAX_BONUS
            : roundsParticipated * BONUS_PER_ROUND;
        // capMul * confidence * (SCALE - ece) <= 12000 * 10000 * 10000 and bonus <= 2500: no overflow.
        unchecked {
            uint256 weight = (capMul * confidence * (SCALE - ece)) / (SCALE * SCALE) + bonus;
            return weight < MAX_WEIGHT ? weight : MAX_WEIGHT;
        }
    }

    /// @notice A hospital's current weight, from its latest submitted metrics and its total
    /// rounds participated.
    /// @param hospital A registered hospital.
    /// @return The weight in fixed point.
    function calculateWeight(address hospital) external view returns (uint256) {
        Hospital memory h = _registered(hospital);
        return calculateWeightPure(h.capacity, h.confidence, h.ece, h.roundsParticipated);
    }

    /// @notice A hospital's weight for a past (or the current) round, from that round's
    /// submission.
    /// @dev Uses the confidence and ECE submitted in `round` and the hospital's rounds
    /// participated as of that round, counting `round` itself (the value `calculateWeight`
    /// returned right after that submission). The snapshot saturates at 63, above the 5 rounds
    /// at which the bonus saturates, so the weight is exact.
    /// @param round The round number (1-based).
    /// @param hospital A registered hospital that submitted in `round`.
    /// @return The weight in fixed point.
    function calculateRoundWeight(uint256 round, address hospital) external view returns (uint256) {
        Hospital memory h = _registered(hospital);
        uint256 lane = _readLane(round, h.index);
        if (lane == 0) revert FLCoordinator__NoSubmission(round, hospital);
        return calculateWeightPure(
            h.capacity,
            (lane >> _CONF_SHIFT) & _METRIC_MASK,
            (lane >> _ECE_SHIFT) & _METRIC_MASK,
            (lane >> _ROUNDS_SHIFT) & _ROUNDS_MASK
        );
    }

    /// @notice The model type a tier must train.
    /// @param capacity The tier.
    /// @return The assigned model type (Weak -> Light, Medium -> Medium, Strong -> Heavy).
    function getModelType(CapacityClass capacity) external pure returns (ModelType) {
        return ModelType(uint8(capacity));
    }

    /// @notice Everything stored about a hospital; zeros for an unregistered address.
    /// @param hospital The account.
    /// @return name Hospital name.
    /// @return capacityClass Its tier.
    /// @return assignedModelType The model type of its tier.
    /// @return confidence Latest submitted confidence.
    /// @return ece Latest submitted ECE.
    /// @return isRegistered Whether the account is registered.
    /// @return pocBenchmarkHash The benchmark hash it registered with.
    /// @return roundsParticipated Rounds it submitted in.
    function getHospitalInfo(address hospital)
        external
        view
        returns (
            string memory name,
            CapacityClass capacityClass,
            ModelType assignedModelType,
            uint256 confidence,
            uint256 ece,
            bool isRegistered,
            bytes32 pocBenchmarkHash,
            uint256 roundsParticipated
        )
    {
        HospitalRecord storage record = _hospitals[hospital];
        Hospital memory h = record.core;
        return (
            record.name,
            h.capacity,
            ModelType(uint8(h.capacity)),
            h.confidence,
            h.ece,
            h.registered,
            record.pocBenchmarkHash,
            h.roundsParticipated
        );
    }

    /// @notice A round's ensemble record; zeros when none was recorded.
    /// @param round The round number.
    /// @return predictionHash Hash of the ensemble's predictions.
    /// @return participantCount Hospitals that formed the ensemble.
    /// @return timestamp Block timestamp of the record.
    function getEnsembleRecord(uint256 round)
        external
        view
        returns (bytes32 predictionHash, uint256 participantCount, uint256 timestamp)
    {
        uint256 header = _lanes[_laneKey(round, 0)];
        timestamp = (header >> _HEADER_TS_SHIFT) & 0xffffffff;
        if (timestamp == 0) return (bytes32(0), 0, 0);
        return (_predictionHashes[round], header >> _HEADER_COUNT_SHIFT, timestamp);
    }

    /// @notice A hospital's submission in a round; zeros when it submitted nothing.
    /// @param round The round number.
    /// @param hospital The account.
    /// @return modelHash Submitted model hash.
    /// @return confidence Submitted confidence.
    /// @return ece Submitted ECE.
    /// @return timestamp Block timestamp of the submission.
    /// @return modelType Model type of the submission.
    function getRoundSubmission(uint256 round, address hospital)
        external
        view
        returns (bytes32 modelHash, uint256 confidence, uint256 ece, uint256 timestamp, ModelType modelType)
    {
        Hospital memory h = _hospitals[hospital].core;
        if (!h.registered) return (bytes32(0), 0, 0, 0, ModelType.Light);
        uint256 lane = _readLane(round, h.index);
        if (lane == 0) return (bytes32(0), 0, 0, 0, ModelType.Light);
        return (
            _modelHashes[_submissionKey(round, hospital)],
            (lane >> _CONF_SHIFT) & _METRIC_MASK,
            (lane >> _ECE_SHIFT) & _METRIC_MASK,
            lane & 0xffffffff,
            ModelType(uint8(h.capacity))
        );
    }

    /// @notice Number of registered hospitals.
    /// @return The count.
    function getHospitalCount() external view returns (uint256) {
        return _hospitalCount;
    }

    /// @notice Number of hospitals that submitted in a round.
    /// @param round The round number.
    /// @return The count (0 for rounds not started yet).
    function getRoundSubmitterCount(uint256 round) external view returns (uint256) {
        if (round != 0 && round == _currentRound && !_roundClosed) return _roundSubmitters;
        return _lanes[_laneKey(round, 0)] >> _HEADER_COUNT_SHIFT;
    }

    /// @notice The current round number (0 before the first round).
    /// @return The round number.
    function currentRound() external view returns (uint256) {
        return _currentRound;
    }

    /// @dev The registered hospital's slot, or revert.
    function _registered(address hospital) private view returns (Hospital memory h) {
        h = _hospitals[hospital].core;
        if (!h.registered) revert FLCoordinator__NotRegistered(hospital);
    }

    /// @dev Key of a hospital's model hash in a round.
    function _submissionKey(uint256 round, address hospital) private pure returns (uint256) {
        return (round << 160) | uint256(uint160(hospital));
    }

    /// @dev Key of the lane slot holding hospital `index` in `round`.
    function _laneKey(uint256 round, uint256 index) private pure returns (uint256) {
        return (round << 32) | (index / _LANES_PER_SLOT);
    }

    /// @dev Bit offset of hospital `index`'s lane inside its slot.
    function _laneOffset(uint256 index) private pure returns (uint256) {
        return (index % _LANES_PER_SLOT) * _LANE_BITS;
    }

    /// @dev The 66-bit lane of hospital `index` in `round` (0 when it did not submit).
    function _readLane(uint256 round, uint256 index) private view returns (uint256) {
        return (_lanes[_laneKey(round, index)] >> _laneOffset(index)) & _LANE_MASK;
    }

    /// @dev Stores the round header (ensemble timestamp, submitter count) in lane slot 0.
    function _writeHeader(uint256 round, uint256 timestamp, uint256 submitters) private {
        uint256 key = _laneKey(round, 0);
        _lanes[key] = (_lanes[key] & ~_HEADER_MASK) | ((timestamp & 0xffffffff) << _HEADER_TS_SHIFT)
            | (submitters << _HEADER_COUNT_SHIFT);
    }
}
